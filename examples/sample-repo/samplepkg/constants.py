"""Constants shared across samplepkg."""

INTERNAL_PREFIXES = ("tmp_", "draft_")
DEFAULT_SEPARATOR = ","
CURRENCY = "EUR"
