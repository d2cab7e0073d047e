"""Bundle fetch: a server (cron + curl) downloads its own current bundle with a fetch token.

`curl -fsS -H "Authorization: Bearer ccf_…" -H 'If-None-Match: <etag>' …/api/v1/fetch/`:
200 with the bundle, or 304 when it has not changed, which costs no key decryption and no
bytes. Every fetch is audited as certificate.fetch (a 304 with not_modified=true).
"""

from django.db.models import F
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from api.authentication import bearer
from api.errors import body
from api.models import FetchToken, digest
from certconsole import exports
from certconsole.audit import record
from certconsole.audit.context import Source, audit_context
from certconsole.audit.middleware import client_ip
from inventory import exporting
from inventory.models import CertificateVersion

# Formats a server can use without a passphrase: "pem" is the full chain then the key.
FORMATS = ("pem", "nginx", "apache", "haproxy", "kubernetes")


def etag(sha256: str, key_id: int | None, fmt: str) -> str:
    """Changes with the version, its key and the format; computed without reading the key."""
    return f'"{sha256[:32]}-{key_id or 0}-{fmt}"'


def _matches(header: str, tag: str) -> bool:
    candidates = [part.strip().removeprefix("W/") for part in header.split(",")]
    return "*" in candidates or tag in candidates


def _error(status: int, code: str, message: str) -> JsonResponse:
    response = JsonResponse(body(code, message), status=status)
    if status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="fetch"'
    return response


def bundle(version, fmt: str) -> exporting.ExportFile:
    """The bytes the server gets; no permission check or audit here (see fetch_bundle)."""
    if fmt == "pem":
        fullchain = exporting.public_file(version, "fullchain")
        key = exporting.key_file(version, "key")
        name = exporting.filename(version.certificate, "bundle.pem")
        return exporting.ExportFile(fullchain.content + key.content, name, exporting.PEM)
    return exporting.key_file(version, fmt)


def _token(secret: str) -> FetchToken | None:
    """The active token with the facts an ETag needs, in one narrow query (the 304 path)."""
    if not secret or len(secret) > 200:
        return None
    current = "certificate__current_version__"
    rows = (
        FetchToken.objects.active()
        .filter(digest=digest(secret))
        .annotate(version_sha256=F(f"{current}sha256"), version_key_id=F(f"{current}private_key"))
        .only(
            "id", "prefix", "format", "project_id", "certificate_id", "binding_id", "last_used_at"
        )
        .order_by()[:1]
    )
    return next(iter(rows), None)


@csrf_exempt
@never_cache
@require_GET
def fetch_bundle(request: HttpRequest) -> HttpResponse:
    token = _token(bearer(request) or "")
    if token is None:
        return _error(401, "not_authenticated", "Invalid, expired or revoked fetch token.")
    token.touch()
    if token.version_sha256 is None or token.version_key_id is None:
        return _error(404, "not_found", "The certificate has no current version with a key.")
    tag = etag(token.version_sha256, token.version_key_id, token.format)
    not_modified = _matches(request.headers.get("If-None-Match", ""), tag)
    version = CertificateVersion.objects.select_related("certificate").get(
        sha256=token.version_sha256, project_id=token.project_id
    )
    with audit_context(
        source=Source.API,
        ip=client_ip(request),
        principal=f"fetch:{token.prefix}",
        user_agent=request.headers.get("User-Agent", ""),
    ):
        exported = None if not_modified else bundle(version, token.format)
        record(
            None,
            "certificate.fetch",
            version.certificate,
            token=token.prefix,
            binding=token.binding_id,
            sha256=version.sha256,
            format=token.format,
            not_modified=not_modified,
        )
    if not_modified:
        response = HttpResponse(status=304)
        response["ETag"] = tag
        return response
    response = exports.attachment(exported.content, exported.content_type, exported.filename)
    response["ETag"] = tag
    return response
