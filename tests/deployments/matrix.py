"""URL × role rows for the deployments area (merged into tests/access/test_url_matrix.py).

rows(expect) returns {url name: (method, args builder, POST data builder, expected statuses)};
ctx has "certificate" (pk of a certificate in project alpha with chain and key) and "version"
(its current version's SHA-256). The builders below add a target, a binding and a deployment
of that certificate with the ORM, once per test (cached in ctx).

Lists are filtered by visible_to(): every signed-in person may open them and sees only what
they may. Forms that create something in "one of your projects" answer 403 to people who may
do it in none; the outsider (ProjectAdmin of beta) may, in beta.
"""

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from deployments.models import Binding, Deployment, DeploymentStep, Target
from inventory.models import Certificate


def nginx_options(base="/tmp/certconsole-matrix") -> dict:
    return {
        "fullchain_path": f"{base}/fullchain.pem",
        "key_path": f"{base}/key.pem",
        "test_command": ["true"],
        "reload_command": ["true"],
    }


def make_target(cert: Certificate, name="web1", kind="nginx_local", options=None) -> Target:
    target, _ = Target.objects.get_or_create(
        project_id=cert.project_id,
        name=name,
        defaults={"kind": kind, "options": options if options is not None else nginx_options()},
    )
    return target


def make_binding(cert: Certificate, target: Target | None = None, wave=1) -> Binding:
    return Binding.objects.create(
        project_id=cert.project_id,
        certificate=cert,
        target=target or make_target(cert),
        sni_names=["www.example.test"],
        probe_host="127.0.0.1",
        probe_port=1,
        wave=wave,
    )


def make_deployment(cert: Certificate, state=Deployment.State.RUNNING, bindings=None) -> Deployment:
    bindings = bindings or [make_binding(cert)]
    deployment = Deployment.objects.create(
        project_id=cert.project_id, certificate=cert, version=cert.current_version, state=state
    )
    for binding in bindings:
        DeploymentStep.objects.create(deployment=deployment, binding=binding, wave=binding.wave)
    return deployment


def ssh_key_line() -> str:
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()


def _certificate(ctx) -> Certificate:
    return Certificate.objects.get(pk=ctx["certificate"])


def _cert(ctx):
    return [ctx["certificate"]]


def _target(ctx):
    return [make_target(_certificate(ctx)).pk]


def _ssh_target(ctx):
    options = {
        "host": "127.0.0.1",
        "port": 1,  # nothing listens: fetching the key fails fast, politely
        "username": "deploy",
        "fullchain_path": "/etc/tls/site.pem",
        "key_path": "/etc/tls/site.key",
        "reload_command": "true",
    }
    return [make_target(_certificate(ctx), name="ssh1", kind="ssh", options=options).pk]


def _deployment(ctx):
    if "deployment" not in ctx:
        ctx["deployment"] = make_deployment(_certificate(ctx)).pk
    return [ctx["deployment"]]


def _alpha(ctx):
    return {"project": _certificate(ctx).project_id}


def _host_key(ctx):
    from deployments.forms import ssh_fingerprint

    line = ssh_key_line()
    return {"key_line": line, "fingerprint": ssh_fingerprint(line)}


def rows(expect):
    deployers = dict(members=403, deployer=200, projectadmin=200)
    deployers_act = dict(members=403, deployer=302, projectadmin=302, superuser=302)
    readers = dict(outsider=404, auditor=403)
    return {
        # The token in the URL is the only credential: an unknown one is 404 for everyone.
        "deployments:bundle-fetch": (
            "get",
            lambda ctx: ["not-a-token"],
            None,
            expect(anonymous=404, outsider=404, members=404, superuser=404),
        ),
        "deployments:deployment-list": ("get", None, None, expect()),
        "deployments:deployment-detail": ("get", _deployment, None, expect(**readers)),
        "deployments:deployment-continue": (
            "post",
            _deployment,
            None,
            expect(outsider=404, **deployers_act),
        ),
        "deployments:deployment-cancel": (
            "post",
            _deployment,
            lambda ctx: {"reason": "matrix"},
            expect(outsider=404, **deployers_act),
        ),
        "deployments:target-list": ("get", None, None, expect()),
        "deployments:target-create": ("get", None, None, expect(**deployers)),
        "deployments:target-detail": ("get", _target, None, expect(**readers)),
        "deployments:target-edit": ("get", _target, None, expect(outsider=404, **deployers)),
        "deployments:target-fetch-host-key": (
            "post",
            _ssh_target,
            None,
            expect(outsider=404, **deployers),
        ),
        "deployments:target-approve-host-key": (
            "post",
            _ssh_target,
            _host_key,
            expect(outsider=404, **deployers_act),
        ),
        "deployments:certificate-deployments": ("get", _cert, None, expect(**readers)),
        "deployments:binding-create": ("get", _cert, None, expect(outsider=404, **deployers)),
        "deployments:deployment-start": ("get", _cert, None, expect(outsider=404, **deployers)),
        "deployments:certificate-rollback": (
            "get",
            _cert,
            None,
            expect(outsider=404, **deployers),
        ),
        "deployments:endpoint-list": ("get", None, None, expect()),
        # The outsider may check beta's endpoints; alpha is not a valid choice for them.
        "deployments:endpoint-check": (
            "post",
            None,
            _alpha,
            expect(outsider=302, **deployers_act),
        ),
        "deployments:endpoint-create": ("get", None, None, expect(**deployers)),
        # Discovery imports what it finds into the inventory: it takes certificate.create.
        "deployments:discover": (
            "get",
            None,
            None,
            expect(members=403, requester=200, keycustodian=200, projectadmin=200),
        ),
    }
