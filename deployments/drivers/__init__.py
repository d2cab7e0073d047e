"""Registry of deployment drivers: kind → class, imported lazily.

Adding a target kind = one module in this package and one line here.
"""

from importlib import import_module

from deployments.drivers.base import Bundle, Driver, DriverError, PushResult

REGISTRY: dict[str, str] = {
    "nginx_local": "deployments.drivers.nginx_local.NginxLocalDriver",
    "ssh": "deployments.drivers.ssh.SshDriver",
    "haproxy": "deployments.drivers.haproxy.HAProxyDriver",
    "webhook": "deployments.drivers.webhook.WebhookDriver",
    "manual": "deployments.drivers.manual.ManualDriver",
}

KIND_LABELS = {
    "nginx_local": "nginx on this host",
    "ssh": "SSH host",
    "haproxy": "HAProxy runtime API",
    "webhook": "Webhook",
    "manual": "Manual",
}


def driver_class(kind: str) -> type[Driver]:
    """The driver class for kind; DriverError for an unknown kind."""
    try:
        module_name, _, class_name = REGISTRY[kind].rpartition(".")
    except KeyError:
        raise DriverError(f"Unknown target kind {kind!r}.", permanent=True) from None
    return getattr(import_module(module_name), class_name)


def get_driver(kind: str, options: dict, credentials: dict | None = None) -> Driver:
    return driver_class(kind)(options, credentials)


__all__ = ["Bundle", "Driver", "DriverError", "PushResult", "driver_class", "get_driver"]
