"""What every download shares: attachment responses and spreadsheet-safe CSV."""

import csv
import json
from collections.abc import Iterable, Iterator

from django.http import HttpResponse
from django.utils.http import content_disposition_header

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def attachment(content: bytes, content_type: str, filename: str) -> HttpResponse:
    """A file download: safe filename header, never cached, never content-sniffed."""
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def safe_cell(value) -> str:
    """One CSV cell, with spreadsheet formulas neutralised (CSV injection); numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write() returns the line, for streaming csv.writer output."""

    def write(self, value):
        return value


def csv_lines(header: Iterable[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """Stream a header and rows as CSV lines, every cell made safe."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([safe_cell(cell) for cell in row])
