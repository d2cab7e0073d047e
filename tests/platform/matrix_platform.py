"""URL × role rows for platform pages (merged into tests/access/test_url_matrix.py).

The dashboard row stays in the main matrix; preferences belong to the signed-in user only.
"""


def rows(expect):
    return {
        "access:preferences": ("get", None, None, expect()),
    }
