"""URL × role rows for the orders area (merged into tests/access/test_url_matrix.py).

rows(expect) returns {url name: (method, args builder, POST data builder, expected statuses)}.
The builders create (once per test) an ACME account, and an order of project alpha by the
requester that waits for approval, with one HTTP-01 authorization — no CA is contacted.
"""

from orders.acme.client import generate_account_key


def _objects(ctx) -> dict:
    if "orders" not in ctx:
        from django.contrib.auth import get_user_model

        from certconsole import keyring
        from certconsole.access.models import Project
        from orders.models import AcmeAccount, Authorization, Challenge, Order

        project = Project.objects.get(slug="alpha")
        account = AcmeAccount.objects.create(
            project=project,
            name="matrix",
            directory_url="https://127.0.0.1:9/dir",
            account_uri="https://127.0.0.1:9/acct/1",
            encrypted_account_key=keyring.encrypt(generate_account_key()),
        )
        order = Order.objects.create(
            project=project,
            account=account,
            domains=["matrix.example.com"],
            state=Order.State.AWAITING_APPROVAL,
            requested_by=get_user_model().objects.get(username="requester"),
        )
        authz = Authorization.objects.create(
            order=order,
            identifier="matrix.example.com",
            url="https://127.0.0.1:9/authz/1",
            method="http-01",
        )
        Challenge.objects.create(
            authorization=authz, type="http-01", url="https://127.0.0.1:9/chall/1", token="t"
        )
        ctx["orders"] = {"order": order.pk, "authz": authz.pk}
    return ctx["orders"]


def _order(ctx):
    return [_objects(ctx)["order"]]


def _authz(ctx):
    return [_objects(ctx)["authz"]]


def _reason(ctx):
    return {"reason": "matrix"}


def rows(expect):
    creators = dict(members=403, requester=200, projectadmin=200)
    managers = dict(members=403, projectadmin=200)
    done = dict(members=403, projectadmin=302, superuser=302)
    return {
        "orders:order-list": ("get", None, None, expect()),
        "orders:renewal-policy": (
            "get",
            lambda ctx: [ctx["certificate"]],
            None,
            expect(outsider=404, **creators),  # certificate.change: Requester, ProjectAdmin
        ),
        "orders:order-create": ("get", None, None, expect(**creators)),
        "orders:order-detail": ("get", _order, None, expect(outsider=404, auditor=403)),
        "orders:order-approve": ("post", _order, _reason, expect(outsider=404, **done)),
        "orders:order-reject": ("post", _order, _reason, expect(outsider=404, **done)),
        "orders:order-cancel": (
            "post",
            _order,
            _reason,
            expect(outsider=404, requester=302, **done),
        ),
        "orders:authz-check-dns": (
            "post",
            _authz,
            None,
            expect(outsider=404, members=302, auditor=403, superuser=302),
        ),
        "orders:authz-submit": (
            "post",
            _authz,
            None,
            expect(outsider=404, requester=302, **done),
        ),
        "orders:issuer-list": ("get", None, None, expect(auditor=403)),
        "orders:account-create": ("get", None, None, expect(**managers)),
        "orders:dns-provider-create": ("get", None, None, expect(**managers)),
        "orders:order-policy": (
            "post",
            None,
            lambda ctx: {"require_approval": "on"},
            expect(outsider=302, **done),
        ),
        "orders:certificate-renew": (
            "post",
            lambda ctx: [_objects(ctx) and ctx["certificate"]],
            None,
            expect(outsider=404, requester=302, **done),
        ),
        "orders:version-revoke": (
            "post",
            lambda ctx: [ctx["certificate"], ctx["version"]],
            lambda ctx: {"reason_code": "0", "reason": "matrix"},
            expect(outsider=404, **done),
        ),
        "acme-challenge": (
            "get",
            lambda ctx: ["no-such-token"],
            None,
            expect(anonymous=404, outsider=404, members=404, superuser=404),
        ),
    }
