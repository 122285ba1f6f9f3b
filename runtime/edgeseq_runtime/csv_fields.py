"""How a CSV line's fields are read, on the host and on the device alike.

``edgeseq_export.rows`` reads whole files by these rules and ``edgeseq stream`` reads stdin's
lines by them, so a row one takes, the other takes the same way: the delimiter sniffed among
``,`` ``;`` and tab by ``csv.Sniffer``, a UTF-8 BOM dropped, fields stripped of spaces, and
a blank field, ``NA``, ``NaN``, ``null`` or ``none`` counted as a missing value.
"""

import csv

DELIMITERS = ",;\t"
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none"})


def sniff_delimiter(sample: str) -> str:
    """``,`` ``;`` or tab, whichever ``csv.Sniffer`` finds in ``sample``; else the first of them
    on its first line; else a comma (a file of one column)."""
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return next((d for d in DELIMITERS if d in sample.partition("\n")[0]), ",")


def split_line(line: str) -> list[str]:
    """One CSV line's fields: its delimiter sniffed, a BOM dropped, each field stripped."""
    line = line.lstrip("\ufeff").strip()
    return [field.strip() for field in next(csv.reader([line], delimiter=sniff_delimiter(line)), [])]


def is_missing(field: str) -> bool:
    """Whether a field stands for a missing value."""
    return field.strip().lower() in MISSING_TOKENS


def parse_number(field: str) -> float | None:
    """A field's number; None when it is a missing value; ValueError when it is text."""
    return None if is_missing(field) else float(field)
