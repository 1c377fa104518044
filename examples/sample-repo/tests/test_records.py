from samplepkg.records import MISSING, Row, has_column, is_blank, parse_row, read_sheet

HEADER = ["sku", "qty", "price"]


def test_parse_row_strips_cells():
    row = parse_row(HEADER, "A-1, 3 ,2.50\n")
    assert list(row) == ["A-1", "3", "2.50"]
    assert row.get("qty") == "3"
    assert len(row) == 3


def test_parse_row_with_other_separator():
    row = parse_row(HEADER, "B-2;0;1", sep=";")
    assert row["sku"] == "B-2"
    assert row.get("colour", "n/a") == "n/a"


def test_text_blanks():
    assert is_blank(None)
    assert is_blank("   ")
    assert not is_blank("0")
    assert not is_blank(0)


def test_empty_cell_is_blank():
    row = parse_row(HEADER, "A-1,,2.50")
    assert row.get("qty") == MISSING
    assert is_blank(row.get("qty"))


def test_has_column():
    row = parse_row(HEADER, "A-1,3,2.50")
    assert has_column(row, "sku")
    assert has_column(row, "price")
    assert not has_column(row, "A-1")


def test_read_sheet_skips_empty_lines():
    rows = read_sheet(["sku,qty,price\n", "A-1,3,2.50\n", "\n", "B-2,0,1.00\n"])
    assert [row.get("sku") for row in rows] == ["A-1", "B-2"]


def test_row_repr():
    row = Row(["sku", "qty"], ["A-1", MISSING])
    assert repr(row) == "Row(sku='A-1', qty=MISSING)"
