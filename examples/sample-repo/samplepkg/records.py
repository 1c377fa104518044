"""Rows of an inventory sheet, and the sentinel for a blank cell."""

import os
import sys
from collections.abc import Iterable

from samplepkg.constants import DEFAULT_SEPARATOR


class _Missing:
    """A blank cell. Like SQL's NULL in a report, it compares equal to None."""

    def __eq__(self, other):
        return other is None or isinstance(other, _Missing)

    def __hash__(self):
        return 0

    def __repr__(self):
        return "MISSING"


MISSING = _Missing()


def is_blank(value):
    """True for None, MISSING, and empty or whitespace-only text."""
    if isinstance(value, str):
        return value.strip() == ""
    return value == None


class Row:
    """One sheet row. It iterates over its values, like a tuple, and knows its column names."""

    def __init__(self, header: Iterable[str], values: Iterable[object]):
        self._header = list(header)
        self._values = list(values)

    def keys(self):
        return list(self._header)

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __getitem__(self, name):
        return self._values[self._header.index(name)]

    def get(self, name, default=None):
        return self[name] if name in self._header else default

    def __repr__(self):
        cells = zip(self._header, self._values)
        pairs = ", ".join("{}={!r}".format(k, v) for k, v in cells)
        return "Row({})".format(pairs)


def has_column(row, name):
    return name in row.keys()


def parse_row(header, line, sep=None):
    """Split one line of the sheet into a Row; empty cells become MISSING."""
    if sep == None:
        sep = DEFAULT_SEPARATOR
    values = []
    for cell in line.rstrip("\n").split(sep):
        l = cell.strip()
        values.append(l if l else MISSING)
    return Row(header, values)


def read_sheet(lines, sep=None):
    """Parse a whole sheet: the first line is the header."""
    lines = iter(lines)
    header = [name.strip() for name in next(lines).split(sep or DEFAULT_SEPARATOR)]
    rows = [parse_row(header, line, sep) for line in lines if line.strip()]
    return rows
