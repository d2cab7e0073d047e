"""URL × role rows for this inventory area (merged into tests/access/test_url_matrix.py).

rows(expect) returns {url name: (method, args builder, POST data builder, expected statuses)};
ctx has "certificate" (pk of a certificate in project alpha with chain and key) and "version"
(its current version's SHA-256). See MATRIX in test_url_matrix.py for the shape.
"""

# Viewers, deployers and auditors may not upload anywhere; the outsider is ProjectAdmin of
# "beta" and may upload there.
NO_UPLOAD = dict(viewer=403, deployer=403, auditor=403)


def rows(expect):
    return {
        "inventory:upload": ("get", None, None, expect(**NO_UPLOAD)),
        # An empty token is a staged upload that expired or was already imported.
        "inventory:upload-confirm": (
            "post",
            None,
            lambda ctx: {"token": ""},
            expect(outsider=400, members=400, superuser=400, **NO_UPLOAD),
        ),
    }
