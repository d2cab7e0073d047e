"""Streaming CSV and JSON Lines exports of audit events."""

import json

from certconsole import exports

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


def csv_lines(events):
    rows = (_row(event) for event in events)
    return exports.csv_lines(FIELDS, ([row[name] for name in FIELDS] for row in rows))


def jsonl_lines(events):
    for event in events:
        yield json.dumps(_row(event), sort_keys=True, default=str) + "\n"
