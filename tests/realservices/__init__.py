"""Real servers for tests (Redis, SMTP, webhooks, Pebble, BIND9, nginx, HAProxy, sshd).

Each server is a class used as a context manager, started on free loopback ports with its
files under a directory the test owns. Fixtures use `require()` so that a missing binary
skips the test on a laptop and fails it on CI, where every component must be installed:

    @pytest.fixture
    def redis_server(tmp_path):
        with require(RedisServer, tmp_path) as server:
            yield server
"""

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import NoReturn, Protocol, TypeVar

import pytest


class ServiceUnavailable(Exception):
    """The server cannot run on this machine (binary not installed, no privileges)."""


class ServiceError(RuntimeError):
    """The server is installed but did not start or stop as expected (a real failure)."""


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


def unavailable(reason: str) -> NoReturn:
    """Skip the test locally; fail it on CI, where every real service must be present."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required on CI)", pytrace=False)
    pytest.skip(reason)


@contextlib.contextmanager
def require(factory: Callable[..., S], *args: object, **kwargs: object) -> Iterator[S]:
    """Build and start a service for one test (or scope), stop it afterwards whatever happens."""
    try:
        service = factory(*args, **kwargs)
        service.start()
    except ServiceUnavailable as exc:
        unavailable(str(exc))
    try:
        yield service
    finally:
        service.stop()
