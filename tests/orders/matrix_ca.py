"""URL × role rows for private CAs and external CA orders (merged into test_url_matrix.py).

The builders create (once per test) an active root CA of project alpha, a CA waiting for an
external root's signature, and an external CA order of the requester waiting for its
certificate. The CRL is public: every persona, anonymous included, gets it.
"""


def _objects(ctx) -> dict:
    if "cas" not in ctx:
        from django.contrib.auth import get_user_model

        from certconsole.access.models import Project
        from orders import issuance, private_ca
        from orders.models import Order

        project = Project.objects.get(slug="alpha")
        active = private_ca.create_ca(None, project, name="Matrix Root", subject="CN=Matrix")
        pending = private_ca.create_ca(
            None, project, name="Matrix Sub", subject="CN=Matrix Sub", external_root=True
        )
        order = issuance.create_order(
            get_user_model().objects.get(username="requester"),
            project,
            kind=Order.Kind.EXTERNAL_CSR,
            external={"ca_name": "Matrix CA", "validation": "DV", "coverage": "single"},
            domains=["matrix.example.com"],
        )
        ctx["cas"] = {"active": active.pk, "pending": pending.pk, "order": order.pk}
    return ctx["cas"]


def _active(ctx):
    return [_objects(ctx)["active"]]


def _pending(ctx):
    return [_objects(ctx)["pending"]]


def _order(ctx):
    return [_objects(ctx)["order"]]


def rows(expect):
    managers = dict(members=403, projectadmin=200)
    manage_post = dict(members=403, projectadmin=302, superuser=302)
    public = dict(anonymous=200, outsider=200, members=200, superuser=200)
    return {
        "orders:ca-list": ("get", None, None, expect(auditor=403)),
        "orders:ca-create": ("get", None, None, expect(**managers)),
        "orders:ca-detail": ("get", _active, None, expect(outsider=404, auditor=403)),
        "orders:ca-profile-create": ("get", _active, None, expect(outsider=404, **managers)),
        "orders:ca-csr": ("get", _pending, None, expect(outsider=404, auditor=403)),
        "orders:ca-upload-signed": ("post", _pending, None, expect(outsider=404, **manage_post)),
        "orders:ca-download": (
            "get",
            lambda ctx: [*_active(ctx), "pem"],
            None,
            expect(outsider=404, auditor=403),
        ),
        "orders:order-csr": ("get", _order, None, expect(outsider=404, auditor=403)),
        "orders:order-upload-certificate": (
            "post",
            _order,
            None,
            expect(outsider=404, requester=302, **manage_post),
        ),
        "ca-crl": ("get", lambda ctx: [*_active(ctx), "pem"], None, expect(**public)),
    }
