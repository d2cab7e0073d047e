"""URL × role rows for the API, its tokens page and /metrics (merged into test_url_matrix.py).

Browser sessions use the API with their own roles (tokens are tested in test_tokens.py).
Anonymous callers get 401 from the API; objects that the matrix context does not create
are looked up by a missing id (404 for everyone signed in, before any other check).
"""

from inventory.models import Certificate

MISSING = 999_999


def _cert(ctx):
    return [ctx["certificate"]]


def _project(ctx):
    return [Certificate.objects.get(pk=ctx["certificate"]).project_id]


def _missing(ctx):
    return [MISSING]


def rows(expect):
    api = dict(anonymous=401)
    read_cert = dict(api, outsider=404, auditor=403)
    missing = expect(anonymous=401, outsider=404, members=404, superuser=404)
    auditors = dict(api, members=403, auditor=200, projectadmin=200)
    rows = {
        "api:project-list": ("get", None, None, expect(**api)),
        "api:project-detail": ("get", _project, None, expect(outsider=404, **api)),
        "api:certificate-list": ("get", None, None, expect(**api)),
        "api:certificate-detail": ("get", _cert, None, expect(**read_cert)),
        "api:certificate-versions": ("get", _cert, None, expect(**read_cert)),
        "api:certificate-download": (
            "get",
            lambda ctx: [ctx["certificate"], "fullchain"],
            None,
            expect(**read_cert),
        ),
        "api:certificate-export-key": (  # sessions re-authenticate on the web page instead
            "post",
            _cert,
            lambda ctx: {"format": "key", "reason": "matrix"},
            expect(outsider=403, members=403, superuser=403, **api),
        ),
        "api:certificate-import": (  # allowed roles get as far as "no file"
            "post",
            None,
            lambda ctx: {"project": "alpha"},
            expect(
                outsider=404,
                members=403,
                requester=400,
                keycustodian=400,
                projectadmin=400,
                superuser=400,
                **api,
            ),
        ),
        "api:certificate-renew": (  # allowed roles reach "no ACME account"
            "post",
            _cert,
            None,
            expect(
                outsider=404, members=403, requester=400, projectadmin=400, superuser=400, **api
            ),
        ),
        "api:deployment-rollback": (  # allowed roles reach "nothing to roll back to"
            "post",
            None,
            lambda ctx: {"certificate": ctx["certificate"], "reason": "matrix"},
            expect(outsider=404, members=403, deployer=400, projectadmin=400, superuser=400, **api),
        ),
        "api:audit-event-list": ("get", None, None, expect(**auditors)),
        "api:audit-event-export": ("get", None, None, expect(**auditors)),
        "api:audit-event-detail": (
            "get",
            lambda ctx: [ctx["event"]],
            None,
            expect(outsider=404, **auditors),
        ),
        "api:schema": ("get", None, None, expect(anonymous=200)),
        "api:docs": ("get", None, None, expect()),
        "api:fetch": (  # only a fetch token opens it
            "get",
            None,
            None,
            expect(anonymous=401, outsider=401, members=401, superuser=401),
        ),
        "metrics": ("get", None, None, expect(anonymous=200)),  # the test client is 127.0.0.1
        "tokens:token-list": ("get", None, None, expect()),
        "tokens:token-create": (
            "post",
            None,
            None,
            expect(outsider=400, members=400, superuser=400),
        ),
        "tokens:token-revoke": (
            "post",
            _missing,
            None,
            expect(outsider=404, members=404, superuser=404),
        ),
        "tokens:fetch-token-create": (
            "post",
            None,
            lambda ctx: {
                "name": "matrix",
                "project": "alpha",
                "certificate": Certificate.objects.get(pk=ctx["certificate"]).name,
                "format": "pem",
            },
            expect(outsider=400, members=403, keycustodian=201, projectadmin=201, superuser=201),
        ),
        "tokens:fetch-token-revoke": (
            "post",
            _missing,
            None,
            expect(outsider=404, members=404, superuser=404),
        ),
    }
    for noun in (
        "order",
        "acme-account",
        "ca",
        "target",
        "binding",
        "deployment",
        "endpoint-check",
    ):
        rows[f"api:{noun}-list"] = ("get", None, None, expect(**api))
        rows[f"api:{noun}-detail"] = ("get", _missing, None, missing)
    for name in ("order-approve", "order-reject", "order-cancel", "deployment-cancel"):
        rows[f"api:{name}"] = ("post", _missing, lambda ctx: {"reason": "matrix"}, missing)
    return rows
