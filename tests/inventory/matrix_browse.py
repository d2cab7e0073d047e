"""URL × role rows for this inventory area (merged into tests/access/test_url_matrix.py).

rows(expect) returns {url name: (method, args builder, POST data builder, expected statuses)};
ctx has "certificate" (pk of a certificate in project alpha with chain and key) and "version"
(its current version's SHA-256). See MATRIX in test_url_matrix.py for the shape.

The list and its CSV are filtered by visible_to(): every signed-in person may open them and
sees only what they may (an auditor or an outsider simply sees none of alpha's certificates).
"""


def _cert(ctx):
    return [ctx["certificate"]]


def rows(expect):
    editors = dict(members=403, requester=200, projectadmin=200)
    return {
        "inventory:certificate-list": ("get", None, None, expect()),
        "inventory:certificate-export-csv": ("get", None, None, expect()),
        "inventory:certificate-detail": ("get", _cert, None, expect(outsider=404, auditor=403)),
        "inventory:certificate-edit": ("get", _cert, None, expect(outsider=404, **editors)),
    }
