"""Streaming CSV and JSON Lines exports of audit events."""

import csv
import json

FIELDS = (
    "id",
    "created_at",
    "actor_name",
    "source",
    "ip",
    "user_agent",
    "project_name",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "reason",
    "detail",
    "prev_hash",
    "hash",
)


def _row(event) -> dict:
    row = {name: getattr(event, name) for name in FIELDS}
    row["created_at"] = event.created_at.isoformat()
    return row


class _Echo:
    def write(self, value):
        return value


def _safe_cell(value) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in exported text."""
    text = json.dumps(value, sort_keys=True) if isinstance(value, dict) else str(value or "")
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_lines(events):
    writer = csv.writer(_Echo())
    yield writer.writerow(FIELDS)
    for event in events:
        row = _row(event)
        yield writer.writerow([_safe_cell(row[name]) for name in FIELDS])


def jsonl_lines(events):
    for event in events:
        yield json.dumps(_row(event), sort_keys=True, default=str) + "\n"
