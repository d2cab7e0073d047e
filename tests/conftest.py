"""Shared fixtures: personas (one user per role), projects, real services, and guards."""

import sys

import pytest
from django.core.signals import got_request_exception
from django.db import connections

from certconsole.access.models import Membership, Project
from certconsole.access.roles import Role
from certconsole.audit import triggers
from tests.realservices import require
from tests.realservices.redis import RedisServer

PASSWORD = "correct horse battery staple"
ROLES = [r.value for r in Role]


@pytest.fixture(autouse=True)
def _fail_on_server_error():
    """Any unhandled exception in a view fails the test: users must never see a 500."""
    errors = []

    def collect(sender, request=None, **kwargs):
        errors.append(
            f"{request.method if request else ''} {request.path if request else ''}: "
            f"{sys.exc_info()[1]!r}"
        )

    got_request_exception.connect(collect, weak=False)
    yield
    got_request_exception.disconnect(collect)
    assert not errors, f"server errors: {errors}"


@pytest.fixture(scope="session", autouse=True)
def _flush_past_audit_triggers():
    """Transactional tests flush every table; lift the append-only triggers just for that.

    Patched on the operations class: Django keeps one connection per thread and context,
    and the flush may run on another wrapper than the one seen here.
    """
    ops_class = type(connections["default"].ops)
    original = ops_class.execute_sql_flush

    def execute_sql_flush(self, sql_list):
        triggers.remove(self.connection)
        try:
            return original(self, sql_list)
        finally:
            triggers.install(self.connection)

    ops_class.execute_sql_flush = execute_sql_flush
    yield
    ops_class.execute_sql_flush = original


@pytest.fixture
def project(db):
    return Project.objects.create(slug="alpha", name="Alpha")


@pytest.fixture
def other_project(db):
    return Project.objects.create(slug="beta", name="Beta")


def make_user(django_user_model, username, **extra):
    return django_user_model.objects.create_user(
        username, f"{username}@example.test", PASSWORD, **extra
    )


@pytest.fixture
def personas(db, django_user_model, project, other_project):
    """One user per role in `project`, an outsider (member of another project only), a superuser."""
    users = {}
    for role in ROLES:
        user = make_user(django_user_model, role)
        Membership.objects.create(user=user, project=project, role=role)
        users[role] = user
    outsider = make_user(django_user_model, "outsider")
    Membership.objects.create(user=outsider, project=other_project, role=Role.PROJECT_ADMIN)
    users["outsider"] = outsider
    users["superuser"] = make_user(django_user_model, "root", is_superuser=True, is_staff=True)
    return users


@pytest.fixture
def client_for(client, personas):
    """client_for("viewer") → the test client signed in as that persona."""

    def sign_in(name):
        client.logout()
        if name != "anonymous":
            client.force_login(personas[name])
        return client

    return sign_in


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port (never fakeredis)."""
    with require(RedisServer, tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
def rq_redis(redis_server, settings):
    """Point every RQ queue at the test Redis, emptied for this test."""
    import redis as redis_lib

    settings.REDIS_URL = redis_server.url
    settings.RQ_QUEUES = {name: {"URL": redis_server.url} for name in settings.RQ_QUEUE_NAMES}
    client = redis_lib.Redis.from_url(redis_server.url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def import_pem(project):
    """import_pem(data, name=...) → the Certificate the import created or updated."""
    from inventory.importing import import_file

    def do_import(data: bytes, filename="upload.pem", target_project=None, **options):
        result = import_file(None, target_project or project, filename, data, **options)
        assert result.status == "imported", result.error
        return result.versions[0].certificate if result.versions else None

    return do_import


@pytest.fixture
def issued_chain():
    from tests.pki.factory import make_chain

    return make_chain()


@pytest.fixture
def inventory_cert(import_pem, issued_chain):
    """A certificate in project alpha with its chain and private key."""
    c = issued_chain
    return import_pem(c.leaf.pem + c.intermediate.pem + c.root.pem + c.leaf.key_pem)
