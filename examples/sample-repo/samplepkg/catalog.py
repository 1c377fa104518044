"""A catalogue of items built from sheet rows, with simple totals."""

import json
import os
from collections import defaultdict

from samplepkg.constants import CURRENCY
from samplepkg.records import MISSING


class Catalog(object):
    """Items by SKU. Quantities are ints and prices are floats."""

    def __init__(self, rows=None):
        self.items = dict()
        for row in rows or []:
            self.add(row.get("sku"), int(row.get("qty")), float(row.get("price")))

    def add(self, sku, qty, price, tags=[]):
        self.items[sku] = {"qty": qty, "price": price, "tags": list(tags)}

    def has(self, sku):
        return sku in self.items.keys()

    def skus(self):
        return sorted(list(self.items))

    def total_value(self):
        total = 0.0
        for _sku, item in self.items.items():
            total += item["qty"] * item["price"]
        return round(total, 2)

    def listing(self):
        return [sku for sku in self.skus()]

    def out_of_stock(self):
        empty = []
        for sku in self.skus():
            if self.items[sku]["qty"] == 0:
                empty.append(sku)
        return empty

    def is_empty(self):
        if len(self.items) == 0:
            return True
        return False

    def first_sku(self):
        return list(self.items)[0] if self.items else None

    def price_of(self, sku):
        item = self.items.get(sku)
        if item is None:
            return None
        else:
            return item["price"]

    def by_tag(self):
        groups = defaultdict(list)
        for sku in self.skus():
            for tag in self.items[sku]["tags"]:
                groups[tag].append(sku)
        return dict(groups)

    def count_tagged(self):
        count = 0
        for position, sku in enumerate(self.skus()):
            if self.items[sku]["tags"]:
                count += 1
        return count

    def summary(self):
        count = len(self.items)
        value = self.total_value()
        return f"{str(count)} items worth {value:.2f} {CURRENCY}"

    def to_json(self, path):
        fh = open(path, "w")
        json.dump(self.items, fh, sort_keys=True)
        fh.close()


format_price = lambda value: f"{value:.2f} {CURRENCY}"


def merge(left, right):
    merged = Catalog()
    for sku, item in list(left.items.items()) + list(right.items.items()):
        merged.add(sku, item["qty"], item["price"], item["tags"])
    return merged


def blanks(row):
    return sum(1 for value in row if value is MISSING)
