import json

from samplepkg.catalog import Catalog, blanks, format_price, merge
from samplepkg.records import read_sheet

SHEET = ["sku,qty,price", "A-1,3,2.50", "B-2,0,10.00", "C-3,2,0.25"]


def make_catalog():
    catalog = Catalog(read_sheet(SHEET))
    catalog.add("D-4", 1, 4.0, tags=["bolts", "m6"])
    return catalog


def test_totals():
    catalog = make_catalog()
    assert catalog.skus() == ["A-1", "B-2", "C-3", "D-4"]
    assert catalog.total_value() == 12.0
    assert catalog.summary() == "4 items worth 12.00 EUR"


def test_stock():
    catalog = make_catalog()
    assert catalog.has("B-2")
    assert not catalog.has("Z-9")
    assert catalog.out_of_stock() == ["B-2"]
    assert catalog.listing() == ["A-1", "B-2", "C-3", "D-4"]


def test_empty_catalog():
    assert Catalog().is_empty()
    assert Catalog().first_sku() is None
    assert not make_catalog().is_empty()


def test_lookup():
    catalog = make_catalog()
    assert catalog.first_sku() == "A-1"
    assert catalog.price_of("B-2") == 10.0
    assert catalog.price_of("Z-9") is None


def test_tags():
    catalog = make_catalog()
    catalog.add("E-5", 2, 1.0, tags=["m6"])
    assert catalog.by_tag() == {"bolts": ["D-4"], "m6": ["D-4", "E-5"]}
    assert catalog.count_tagged() == 2
    assert catalog.items["A-1"]["tags"] == []


def test_to_json(tmp_path):
    path = tmp_path / "catalog.json"
    make_catalog().to_json(path)
    assert json.loads(path.read_text())["A-1"] == {"qty": 3, "price": 2.5, "tags": []}


def test_merge_and_helpers():
    left = make_catalog()
    right = Catalog()
    right.add("A-1", 9, 2.5)
    merged = merge(left, right)
    assert merged.items["A-1"]["qty"] == 9
    assert format_price(3) == "3.00 EUR"
    assert blanks(read_sheet(["sku,qty", "A-1,"])[0]) == 1
