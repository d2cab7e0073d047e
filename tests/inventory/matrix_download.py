"""URL × role rows for this inventory area (merged into tests/access/test_url_matrix.py).

rows(expect) returns {url name: (method, args builder, POST data builder, expected statuses)};
ctx has "certificate" (pk of a certificate in project alpha with chain and key) and "version"
(its current version's SHA-256). See MATRIX in test_url_matrix.py for the shape.
"""

KEY_ROLES_ONLY = dict(members=403, keycustodian=200, projectadmin=200)


def rows(expect):
    return {
        "inventory:certificate-download": (
            "get",
            lambda ctx: [ctx["certificate"], "fullchain"],
            None,
            expect(outsider=404, auditor=403),
        ),
        "inventory:key-export": (
            "get",
            lambda ctx: [ctx["certificate"]],
            None,
            expect(outsider=404, **KEY_ROLES_ONLY),
        ),
    }
