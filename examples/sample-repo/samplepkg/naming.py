"""Names of catalogue items: slugs, and which names are internal."""

import unicodedata
import re

from samplepkg.constants import INTERNAL_PREFIXES

_NON_WORD = re.compile("[^\w]+")
MAX_SLUG = 40


def is_internal(name):
    """Internal items are drafts, scratch entries and anything private."""
    return name.startswith(INTERNAL_PREFIXES) or name.startswith("_")


def is_sheet_file(filename):
    return filename.endswith(".csv") or filename.endswith(".tsv")


def slugify(name):
    """Lower-case ASCII words joined by dashes."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    text = _NON_WORD.sub("-", text.lower()).strip("-")
    if text == "":
        slug = "item"
    else:
        slug = text
    return slug[:MAX_SLUG]


def has_digit(name):
    for ch in name:
        if ch.isdigit():
            return True
    return False


def label(name, count):
    if count <= 0:
        return f"{name} (none)"
    return "%s (%d)" % (name, count)
