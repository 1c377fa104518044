"""Checks for inventory rows. Every failed check writes a line to the Report."""

import re
from dataclasses import dataclass, field
from samplepkg.records import is_blank

SKU_PATTERN = re.compile("^[A-Z]+-\d+$")


@dataclass
class Report:
    errors: list[str] = field(default_factory=list)

    def add(self, message):
        self.errors.append(message)

    @property
    def ok(self):
        return not self.errors


def check_sku(row, report):
    sku = row.get("sku")
    if is_blank(sku):
        report.add("sku is blank")
        return False
    if not SKU_PATTERN.match(sku):
        report.add("sku {} is malformed".format(sku))
        return False
    return True


def check_qty(row, report):
    try:
        qty = int(row.get("qty"))
    except:
        report.add("qty is not a number")
        return False
    if qty < 0:
        report.add(f"qty {qty} is negative")
        return False
    return True


def check_price(row, report):
    price = row.get("price")
    if is_blank(price):
        return True
    try:
        value = float(price)
    except ValueError:
        raise ValueError(f"price {price!r} is not a number")
    if value < 0:
        report.add("price {} is negative".format(value))
    return value >= 0


DEFAULT_CHECKS = (check_sku, check_qty, check_price)


def validate(row, checks=DEFAULT_CHECKS, report=None):
    """Run every check on the row, so the report lists every problem at once."""
    report = report if report is not None else Report()
    passed = all([check(row, report) for check in checks])
    return passed, report


def validate_all(rows, extra_checks=()):
    checks = [check_sku, check_qty, check_price] + list(extra_checks)
    reports = {}
    for index, row in enumerate(rows):
        ok, report = validate(row, checks)
        if not ok:
            reports[index] = report
    return reports


def any_failed(results):
    return any([not ok for ok, _ in results])
