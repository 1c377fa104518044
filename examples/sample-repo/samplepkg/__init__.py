"""samplepkg: read, check and summarise inventory sheets."""

from samplepkg.catalog import Catalog
from samplepkg.naming import is_internal, slugify
from samplepkg.records import MISSING, Row, is_blank, parse_row
from samplepkg.validate import Report, validate

__all__ = [
    "MISSING",
    "Catalog",
    "Report",
    "Row",
    "is_blank",
    "is_internal",
    "parse_row",
    "slugify",
    "validate",
]
__version__ = "0.1.0"
