from samplepkg.naming import has_digit, is_internal, is_sheet_file, label, slugify


def test_internal_names():
    assert is_internal("tmp_widget")
    assert is_internal("draft_bolts")
    assert is_internal("_hidden")
    assert not is_internal("widget")


def test_sheet_files():
    assert is_sheet_file("stock.csv")
    assert is_sheet_file("stock.tsv")
    assert not is_sheet_file("stock.json")


def test_slugify():
    assert slugify("Café Crème!") == "cafe-creme"
    assert slugify("  --  ") == "item"
    assert len(slugify("x" * 100)) == 40


def test_has_digit():
    assert has_digit("m6 bolt")
    assert not has_digit("bolt")


def test_label():
    assert label("bolts", 0) == "bolts (none)"
    assert label("bolts", 3) == "bolts (3)"
