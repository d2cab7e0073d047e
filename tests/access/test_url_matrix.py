"""Every URL × every persona: the answer each role must get.

Adding a URL without a row here fails `test_every_url_is_in_the_matrix`.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from certconsole.access.models import Membership
from certconsole.audit import record
from tests.access import matrix_security
from tests.api import matrix as matrix_api
from tests.deployments import matrix as matrix_deployments
from tests.inventory import matrix_browse, matrix_download, matrix_notifications, matrix_upload
from tests.orders import matrix as matrix_orders
from tests.orders import matrix_ca
from tests.platform import matrix_platform

PERSONAS = [
    "anonymous",
    "outsider",
    "viewer",
    "requester",
    "deployer",
    "keycustodian",
    "auditor",
    "projectadmin",
    "superuser",
]


def expect(anonymous=302, outsider=200, members=200, superuser=200, **overrides):
    """Expected status per persona; members = every role of the project unless overridden."""
    table = {"anonymous": anonymous, "outsider": outsider, "superuser": superuser}
    for role in PERSONAS[2:-1]:
        table[role] = overrides.get(role, members)
    return table


AUDITORS_ONLY = dict(
    members=403, auditor=200, projectadmin=200
)  # outsider is ProjectAdmin of another project: sees its own audit log

# name → (method, args builder, POST data builder, expected statuses)
MATRIX = {
    "dashboard": ("get", None, None, expect()),
    "healthz": ("get", None, None, expect(anonymous=200)),
    "readyz": ("get", None, None, expect(anonymous=200)),
    "login": ("get", None, None, expect(anonymous=200)),
    "logout": ("post", None, None, expect(anonymous=302, outsider=302, members=302, superuser=302)),
    "password_change": ("get", None, None, expect()),
    "password_change_done": ("get", None, None, expect()),
    "access:project-list": ("get", None, None, expect()),
    "access:project-create": ("get", None, None, expect(outsider=403, members=403)),
    "access:switch-project": (
        "post",
        None,
        lambda ctx: {"project": "alpha", "next": "/"},
        expect(outsider=302, members=302, superuser=302),
    ),
    "access:project-detail": ("get", lambda ctx: ["alpha"], None, expect(outsider=404)),
    "access:member-add": (
        "post",
        lambda ctx: ["alpha"],
        lambda ctx: {"username": "outsider", "role": "viewer", "reason": "matrix"},
        expect(outsider=404, members=403, projectadmin=302, superuser=302),
    ),
    "access:member-remove": (
        "post",
        lambda ctx: ["alpha", ctx["viewer_membership"]],
        lambda ctx: {"reason": "matrix"},
        expect(outsider=404, members=403, projectadmin=302, superuser=302),
    ),
    "audit:event-list": ("get", None, None, expect(**AUDITORS_ONLY)),
    "audit:event-detail": (
        "get",
        lambda ctx: [ctx["event"]],
        None,
        expect(outsider=404, **AUDITORS_ONLY),
    ),
    "audit:event-export-csv": ("get", None, None, expect(**AUDITORS_ONLY)),
    "audit:event-export-jsonl": ("get", None, None, expect(**AUDITORS_ONLY)),
}


# Each inventory area keeps its rows beside its tests; same shape as above.
AREAS = (
    matrix_browse,
    matrix_download,
    matrix_upload,
    matrix_deployments,
    matrix_notifications,
    matrix_platform,
    matrix_orders,
    matrix_security,
    matrix_api,
    matrix_ca,
)
for rows in (area.rows(expect) for area in AREAS):
    assert not set(rows) & set(MATRIX), "a URL name is listed twice"
    MATRIX.update(rows)


def all_url_names(resolver=None, namespace=""):
    resolver = resolver or get_resolver()
    names = set()
    for pattern in resolver.url_patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            names |= all_url_names(pattern, inner)
        elif isinstance(pattern, URLPattern):
            assert pattern.name, f"URL pattern {pattern.pattern} has no name"
            names.add(f"{namespace}{pattern.name}")
    return names


def test_every_url_is_in_the_matrix():
    assert all_url_names() == set(MATRIX)


@pytest.fixture
def matrix_context(personas, project, rq_redis, inventory_cert):
    viewer_membership = Membership.objects.get(user=personas["viewer"], project=project)
    event = record(personas["projectadmin"], "test.event", project)
    return {
        "viewer_membership": viewer_membership.pk,
        "event": event.pk,
        "certificate": inventory_cert.pk,
        "version": inventory_cert.current_version.sha256,
    }


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("name", sorted(MATRIX))
def test_url_answers_each_role_as_designed(name, persona, client_for, matrix_context):
    method, args, data, expected = MATRIX[name]
    client = client_for(persona)
    url = reverse(name, args=args(matrix_context) if args else None)
    payload = data(matrix_context) if data else {}
    response = getattr(client, method)(url, payload)
    assert response.status_code == expected[persona], (
        f"{method.upper()} {url} as {persona}: {response.status_code}"
    )
