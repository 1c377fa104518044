import pytest

from samplepkg.records import parse_row
from samplepkg.validate import Report, any_failed, check_sku, validate, validate_all

HEADER = ["sku", "qty", "price"]


def row(line):
    return parse_row(HEADER, line)


def test_valid_row_passes():
    passed, report = validate(row("A-1,3,2.50"))
    assert passed
    assert report.ok


def test_report_lists_every_problem():
    passed, report = validate(row("a-1,-2,1.00"))
    assert not passed
    assert report.errors == ["sku a-1 is malformed", "qty -2 is negative"]


def test_blank_sku_is_reported():
    report = Report()
    assert not check_sku(row(",3,2.50"), report)
    assert report.errors == ["sku is blank"]


def test_bad_quantity_and_price():
    passed, report = validate(row("A-1,lots,-1"))
    assert not passed
    assert report.errors == ["qty is not a number", "price -1.0 is negative"]


def test_unparseable_price_raises():
    with pytest.raises(ValueError, match="not a number"):
        validate(row("A-1,3,cheap"))


def test_validate_all_keeps_failing_rows():
    rows = [row("A-1,3,2.50"), row("B-2,x,1.00"), row("C-3,1,1.00")]
    reports = validate_all(rows, extra_checks=[lambda r, rep: r.get("sku") != "C-3"])
    assert sorted(reports) == [1, 2]
    assert reports[1].errors == ["qty is not a number"]


def test_any_failed():
    assert any_failed([(True, None), (False, None)])
    assert not any_failed([(True, None)])
