"""URL × role rows for the deployments area (merged into tests/access/test_url_matrix.py).

rows(expect) returns {url name: (method, args builder, POST data builder, expected statuses)};
ctx has "certificate" (pk of a certificate in project alpha with chain and key) and "version"
(its current version's SHA-256). See MATRIX in test_url_matrix.py for the shape.
"""


def rows(expect):
    return {}
