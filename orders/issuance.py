"""The order state machine: every transition of an Order, in one place.

    draft → awaiting_approval → pending_validation → validating → ready → issuing → issued
                                                                       ↘ failed | cancelled
    private CA:   draft → (awaiting_approval) → issuing → issued   (signed at once, no worker)
    external CA:  draft → (awaiting_approval) → submitted → issued (the user uploads the cert)

People move an order with create_order / approve / reject / cancel / submit_challenge; a
worker moves it with advance(order_id), which claims the order (a lease on the row),
runs the step of its state and repeats until the order waits (for a person, the CA or a
retry). Every step is idempotent against the CA, so a worker killed anywhere loses
nothing: once its lease lapses the sweep re-enqueues the order and the step runs again.
Every transition is a conditional update (`filter(id=…, state=X).update(state=Y) == 1`),
writes a timeline event and an audit event.

Settings (all optional): ACME_POLL_INTERVAL (1.0 s), ACME_POLL_BACKOFF (1.5),
ACME_POLL_MAX_INTERVAL (10 s), ACME_STEP_TIMEOUT (120 s of polling per job),
ACME_LEASE_SECONDS (300), ACME_RETRY_BASE (30 s), ACME_RETRY_MAX (3600 s),
ACME_MAX_ATTEMPTS (8), ACME_DNS_NAMESERVERS (None: the domain's authoritative servers),
ACME_DNS_RECHECK_SECONDS (60: how often "submit when visible" orders look for their TXT).
"""

import logging
import time
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import F, Q
from django.dispatch import Signal
from django.utils import timezone

from certconsole.access.permissions import require
from certconsole.audit import record
from inventory.models import Certificate, CertificateVersion, IssuerCertificate
from inventory.pki import keys as pki_keys
from orders.acme.errors import AcmeError
from orders.ca import CaError
from orders.dcv import DcvError
from orders.models import (
    AcmeAccount,
    Authorization,
    Challenge,
    DnsProvider,
    IssuanceProfile,
    Order,
    OrderEvent,
    OrderPolicy,
    RenewalPolicy,
)

log = logging.getLogger(__name__)
# Sent (after commit) when an order fails: receivers get order_id, certificate_id (None for a
# new certificate), is_renewal and message. The notifications app tells the owners of a failed
# renewal; orders imports no notifier.
order_failed = Signal()
State = Order.State
SUPPORTED_CHALLENGES = ("http-01", "dns-01")
REVOCATION_REASONS = [
    (0, "Unspecified"),
    (1, "Key compromise"),
    (3, "Affiliation changed"),
    (4, "Superseded"),
    (5, "Cessation of operation"),
]


class OrderError(ValueError):
    """The order cannot do that now (wrong state, bad input); the message is for the user."""


def _setting(name: str, default):
    return getattr(settings, name, default)


# --- Events and transitions ---------------------------------------------------------------


def event(order: Order, kind: str, message: str) -> None:
    OrderEvent.objects.create(order=order, kind=kind, message=message[:4000])


def _transition(order: Order, from_state: str, to_state: str, actor, message: str, **fields):
    """Move order from from_state to to_state if it is still there; False if it was not."""
    with transaction.atomic():
        changed = Order.objects.filter(pk=order.pk, state=from_state).update(
            state=to_state, updated_at=timezone.now(), **fields
        )
        if changed != 1:
            return False
        order.state = to_state
        for name, value in fields.items():
            setattr(order, name, value)
        event(order, to_state, message)
        record(
            actor,
            "order.transition",
            order,
            reason=fields.get("last_error", "") or "",
            from_state=from_state,
            to_state=to_state,
        )
    return True


def _kick(order: Order) -> None:
    """Make the order due now and hand it to a worker (after commit)."""
    Order.objects.filter(pk=order.pk).update(next_attempt_at=timezone.now())
    order_id = order.pk

    def send() -> None:
        import django_rq

        django_rq.get_queue("acme").enqueue("orders.jobs.advance_order", order_id)

    # robust: with Redis down the order still exists, and the sweep enqueues it later.
    transaction.on_commit(send, robust=True)


# --- People's actions ---------------------------------------------------------------------


# Organisation details an OV/EV CA asks for → the CSR subject attribute that carries them.
ORGANIZATION_OIDS = {
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "C": NameOID.COUNTRY_NAME,
}


def build_csr(key, domains: list[str], organization: dict | None = None) -> bytes:
    """A CSR for domains (the first as CN when it fits) signed with key; organisation details
    (O, OU, L, ST, C) go into the subject for OV/EV products."""
    builder = x509.CertificateSigningRequestBuilder()
    attributes = [
        x509.NameAttribute(ORGANIZATION_OIDS[k], v)
        for k, v in (organization or {}).items()
        if v and k in ORGANIZATION_OIDS
    ]
    if len(domains[0]) <= 64:
        attributes.insert(0, x509.NameAttribute(NameOID.COMMON_NAME, domains[0]))
    if attributes:
        builder = builder.subject_name(x509.Name(attributes))
    builder = builder.add_extension(
        x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def csr_names(csr_pem: bytes) -> list[str]:
    """The DNS names a CSR asks for (SANs, else its CN); OrderError if it is unreadable."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise OrderError(f"The CSR cannot be read: {exc}") from None
    if not csr.is_signature_valid:
        raise OrderError("The CSR's signature is not valid.")
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = sans.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return [str(n).lower() for n in names]


def create_order(
    actor,
    project,
    *,
    account: AcmeAccount | None = None,
    domains: list[str],
    methods: dict | None = None,
    key_type: str = "ec-p256",
    certificate: Certificate | None = None,
    certificate_name: str = "",
    labels: dict | None = None,
    csr_pem: bytes | None = None,
    private_key=None,
    is_renewal: bool = False,
    submit_when_dns_ok: bool = False,
    kind: str = Order.Kind.ACME,
    profile: IssuanceProfile | None = None,
    external: dict | None = None,
    days: int | None = None,
) -> Order:
    """Create an order; it waits for approval when the project says so, else starts.

    kind "acme" needs an account, "private_ca" a profile of a CA of the project (signed at
    once), "external_csr" the external CA's details (the order waits for the certificate).
    """
    require(actor, "certificate.renew" if is_renewal else "order.create", project)
    if kind == Order.Kind.ACME and account is None:
        raise OrderError("Choose an issuer.")
    if account is not None and account.project_id != project.pk:
        raise OrderError("That ACME account belongs to another project.")
    if kind == Order.Kind.PRIVATE_CA and (profile is None or profile.ca.project_id != project.pk):
        raise OrderError("Choose a profile of one of this project's private CAs.")
    if certificate is not None and certificate.project_id != project.pk:
        raise OrderError("That certificate belongs to another project.")
    if not domains:
        raise OrderError("Give at least one domain name.")
    if kind == Order.Kind.ACME:
        methods = {name: (methods or {}).get(name) or _default_method(name) for name in domains}
    else:
        methods = {}
    for name, choice in methods.items():
        if name.startswith("*.") and choice["method"] != "dns-01":
            raise OrderError(f"{name}: a wildcard can only be validated with DNS-01.")
    encrypted_key = ""
    if csr_pem is None:
        from certconsole import keyring

        key = private_key or pki_keys.generate_private_key(key_type)
        csr_pem = build_csr(key, domains, (external or {}).get("organization"))
        encrypted_key = keyring.encrypt(pki_keys.private_key_pem(key))
    with transaction.atomic():
        order = Order.objects.create(
            project=project,
            kind=kind,
            account=account if kind == Order.Kind.ACME else None,
            ca=profile.ca if profile is not None else None,
            profile=profile,
            external=external or {},
            days=days,
            certificate=certificate,
            certificate_name=certificate_name,
            domains=domains,
            methods=methods,
            key_type=key_type,
            csr_pem=csr_pem.decode(),
            csr_supplied=not encrypted_key,
            encrypted_private_key=encrypted_key,
            labels=labels or {},
            is_renewal=is_renewal,
            submit_when_dns_ok=submit_when_dns_ok,
            requested_by=actor if actor is not None and actor.is_authenticated else None,
        )
        who = actor.get_username() if order.requested_by else "the console"
        event(order, "draft", f"Order for {len(domains)} name(s) created by {who}.")
        record(actor, "order.create", order, domains=domains, key_type=key_type)
        if actor is not None and OrderPolicy.for_project(project).require_approval:
            _transition(
                order,
                State.DRAFT,
                State.AWAITING_APPROVAL,
                actor,
                "Waiting for a ProjectAdmin other than the requester to approve.",
            )
        else:
            _start(order, actor, State.DRAFT, "Order started.")
    return order


def _start(order: Order, actor, from_state: str, message: str, **fields) -> bool:
    """Send an order on once it needs no approval: an ACME order to the worker; a private CA
    signs at once; an external CA order waits for the certificate. False if it had moved."""
    if order.kind == Order.Kind.PRIVATE_CA:
        note = f"{message} Signing with the private CA {order.ca}."
        if not _transition(order, from_state, State.ISSUING, actor, note, **fields):
            return False
        _issue_private(order)
        return True
    if order.kind == Order.Kind.EXTERNAL_CSR:
        ca_name = order.external.get("ca_name") or "the CA"
        note = (
            f"{message} Next: download the CSR, submit it to {ca_name}, then upload the "
            "certificate it issues to this order."
        )
        return _transition(order, from_state, State.SUBMITTED, actor, note, **fields)
    if not _transition(order, from_state, State.PENDING_VALIDATION, actor, message, **fields):
        return False
    _kick(order)
    return True


def _issue_private(order: Order) -> None:
    """Sign the order with its private CA and store the result; a refusal fails the order."""
    from inventory.models import Source
    from orders import private_ca

    try:
        with transaction.atomic():
            fullchain = private_ca.sign_order(order)
            _store_certificate(order, fullchain, source=Source.PRIVATE_CA)
    except (CaError, AcmeError) as exc:
        _fail(order, f"The private CA refused: {exc}")


def attach_external_certificate(
    actor, order: Order, filename: str, data: bytes, password: bytes | None = None
) -> CertificateVersion:
    """The external CA's certificate for an order's CSR: matched to the key by SPKI, the chain
    completed from the pool, stored as the order's version. OrderError says why not."""
    from inventory.importing import plan_file
    from inventory.models import Source
    from orders.ca import read_csr

    require(actor, "order.create", order)
    if order.kind != Order.Kind.EXTERNAL_CSR or order.state != State.SUBMITTED:
        raise OrderError("This order is not waiting for a certificate from an external CA.")
    plan = plan_file(None, order.project, filename, data, password)
    if plan.error:
        raise OrderError(f"The file could not be read: {plan.error}")
    wanted = pki_keys.spki_sha256(read_csr(order.csr_pem).public_key)
    leaves = [p for p in plan.certificates if p.info.spki_sha256 == wanted]
    if not leaves:
        found = ", ".join(p.info.spki_sha256[:16] + "…" for p in plan.certificates) or "none"
        raise OrderError(
            "This certificate does not match the order's key: it was issued for another CSR "
            f"(the order's public key SHA-256 is {wanted[:16]}…, the file has {found}). "
            "Upload the certificate the CA issued for this order's CSR."
        )
    leaf = leaves[0].cert
    fullchain = leaf.public_bytes(serialization.Encoding.PEM) + b"".join(
        c.public_bytes(serialization.Encoding.PEM) for c in plan.cas
    )
    with transaction.atomic():
        event(order, "upload", f"Certificate uploaded ({filename}): it matches the order's key.")
        record(actor, "order.upload_certificate", order, file=filename)
        _store_certificate(order, fullchain, source=Source.EXTERNAL_CSR, from_state=State.SUBMITTED)
    order.refresh_from_db()
    if order.state != State.ISSUED:
        raise OrderError(order.last_error or "The certificate could not be stored.")
    return order.issued_version


def _default_method(name: str) -> dict:
    return {"method": "dns-01" if name.startswith("*.") else "http-01", "dns_provider": None}


def approve(actor, order: Order, reason: str) -> None:
    """A ProjectAdmin other than the requester lets the order go to the CA."""
    require(actor, "order.approve", order)
    if actor is not None and actor.pk == order.requested_by_id:
        raise PermissionDenied("Someone other than the requester must approve this order.")
    with transaction.atomic():
        if not _start(
            order,
            actor,
            State.AWAITING_APPROVAL,
            f"Approved by {actor.get_username() if actor else 'the console'}: {reason}",
            approved_by=actor,
        ):
            raise OrderError("This order is not waiting for approval.")
        record(actor, "order.approve", order, reason=reason)


def reject(actor, order: Order, reason: str) -> None:
    require(actor, "order.approve", order)
    if actor is not None and actor.pk == order.requested_by_id:
        raise PermissionDenied("Someone other than the requester must decide on this order.")
    who = actor.get_username() if actor else "the console"
    with transaction.atomic():
        if not _transition(
            order,
            State.AWAITING_APPROVAL,
            State.CANCELLED,
            actor,
            f"Rejected by {who}: {reason}",
            last_error=f"Rejected by {who}: {reason}",
        ):
            raise OrderError("This order is not waiting for approval.")
        record(actor, "order.reject", order, reason=reason)


def cancel(actor, order: Order, reason: str = "") -> None:
    require(actor, "order.cancel", order)
    who = actor.get_username() if actor else "the console"
    with transaction.atomic():
        for state in (State.DRAFT, State.AWAITING_APPROVAL, State.SUBMITTED, *Order.WORKER_STATES):
            if _transition(
                order, state, State.CANCELLED, actor, f"Cancelled by {who}. {reason}".strip()
            ):
                record(actor, "order.cancel", order, reason=reason)
                break
        else:
            raise OrderError("This order has already ended.")
    _cleanup_dns(order)


def submit_challenge(actor, authz: Authorization) -> None:
    """The user says the manual TXT record is in place: answer the challenge."""
    order = authz.order
    require(actor, "order.create", order)
    if order.state != State.PENDING_VALIDATION or authz.submitted or not authz.manual_dns:
        raise OrderError("This challenge is not waiting for you.")
    with transaction.atomic():
        Authorization.objects.filter(pk=authz.pk).update(confirmed=True)
        event(order, "submit", f"{authz}: you asked to submit the DNS-01 challenge to the CA.")
        record(actor, "order.submit_challenge", order, identifier=str(authz))
        _kick(order)


def check_dns(actor, authz: Authorization) -> dict:
    """Ask the authoritative name servers for the TXT record; store and return what they said."""
    from orders.dcv import dns_check

    require(actor, "order.view", authz.order)
    challenge = authz.chosen_challenge()
    if challenge is None or not challenge.txt_name:
        raise OrderError("This authorization has no DNS-01 challenge.")
    result = dns_check.check_txt(
        challenge.txt_name, challenge.txt_value, nameservers=_setting("ACME_DNS_NAMESERVERS", None)
    )
    found = {
        "ok": result.ok,
        "found": list(result.found),
        "queried": list(result.queried),
        "error": result.error or "",
        "at": timezone.now().isoformat(timespec="seconds"),
    }
    Authorization.objects.filter(pk=authz.pk).update(dns_check=found)
    authz.dns_check = found
    word = "found" if result.ok else "not found yet"
    event(authz.order, "dns_check", f"{authz}: TXT record {word} ({', '.join(found['queried'])}).")
    return found


# --- The worker ---------------------------------------------------------------------------


def claim(order_id: int) -> bool:
    """Take the lease on an order a worker may move; False if it is not due for one."""
    now = timezone.now()
    lease = timedelta(seconds=_setting("ACME_LEASE_SECONDS", 300))
    claimed = (
        Order.objects.filter(pk=order_id, state__in=Order.WORKER_STATES)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .update(claimed_until=now + lease)
    )
    return claimed == 1


def advance(order_id: int, *, max_steps: int | None = None) -> str | None:
    """Claim the order and move it as far as it can go now (or max_steps); returns its state."""
    if claim(order_id):
        order = Order.objects.select_related("account", "project").get(pk=order_id)
        deadline = time.monotonic() + _setting("ACME_STEP_TIMEOUT", 120.0)
        steps = 0
        try:
            while order.state in Order.WORKER_STATES and steps != max_steps:
                steps += 1
                if not STEPS[order.state](order, deadline):
                    break
                order.refresh_from_db()
        except AcmeError as exc:
            _handle_error(order, exc)
        except DcvError as exc:
            _handle_error(order, AcmeError(str(exc), permanent=exc.permanent))
        except Exception as exc:
            log.exception("Order %s: step failed", order_id)
            _handle_error(order, AcmeError(f"Internal error: {exc}", permanent=False))
        finally:
            Order.objects.filter(pk=order_id).update(claimed_until=None)
    return Order.objects.filter(pk=order_id).values_list("state", flat=True).first()


def due_orders(now=None):
    """Orders a worker should pick up: in a worker state, due, and not held by a live lease."""
    now = now or timezone.now()
    return (
        Order.objects.filter(state__in=Order.WORKER_STATES, next_attempt_at__lte=now)
        .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        .order_by("next_attempt_at")
    )


def _client(order: Order):
    return order.account.client()


def _step_pending(order: Order, deadline: float) -> bool:
    client = _client(order)
    if not order.acme_order_url:
        _place(order, client)
    waiting = []
    authzs = order.authorizations.select_related("dns_provider").prefetch_related("challenges")
    for authz in authzs:
        if authz.status == "valid" or authz.submitted:
            continue
        if authz.manual_dns and not authz.confirmed:
            waiting.append(authz)
            continue
        _answer(order, authz, client)
    if order.submit_when_dns_ok:
        for authz in [a for a in waiting if _txt_visible(order, a)]:
            _answer(order, authz, client)
            waiting.remove(authz)
    if waiting:
        recheck = timedelta(seconds=_setting("ACME_DNS_RECHECK_SECONDS", 60))
        later = timezone.now() + recheck if order.submit_when_dns_ok else None
        Order.objects.filter(pk=order.pk).update(next_attempt_at=later)
        return False
    return _transition(
        order,
        State.PENDING_VALIDATION,
        State.VALIDATING,
        None,
        "Every challenge is answered; the CA is validating.",
        attempts=0,
    )


def _txt_visible(order: Order, authz: Authorization) -> bool:
    """For "submit when the check passes": is the manual TXT record served now?"""
    found = check_dns(None, authz)
    if found["ok"]:
        event(order, "submit", f"{authz}: the TXT record is visible; submitting to the CA.")
    return found["ok"]


def _place(order: Order, client) -> None:
    snapshot = client.new_order(order.csr_pem.encode())
    with transaction.atomic():
        if not Order.objects.filter(pk=order.pk, acme_order_url="").update(
            acme_order_url=snapshot.url, finalize_url=snapshot.finalize_url
        ):
            return
        order.acme_order_url = snapshot.url
        event(order, "placed", f"Order placed at the CA: {snapshot.url}")
        for authz in snapshot.authorizations:
            _store_authorization(order, authz, client)


def _store_authorization(order: Order, snapshot, client) -> None:
    choice = order.methods.get(snapshot.name) or _default_method(snapshot.name)
    provider = None
    if choice.get("dns_provider"):
        provider = DnsProvider.objects.filter(
            project=order.project_id, pk=choice["dns_provider"]
        ).first()
    if provider is not None and provider.kind == DnsProvider.Kind.MANUAL:
        provider = None
    authz = Authorization.objects.create(
        order=order,
        identifier=snapshot.identifier,
        wildcard=snapshot.wildcard,
        url=snapshot.url,
        status=snapshot.status,
        method=choice["method"],
        dns_provider=provider,
    )
    for ch in snapshot.challenges:
        if ch.type not in SUPPORTED_CHALLENGES:
            continue
        row = Challenge(
            authorization=authz,
            type=ch.type,
            url=ch.url,
            token=ch.token,
            status=ch.status,
            error=ch.error or "",
        )
        if ch.type == "http-01":
            row.key_authorization = client.key_authorization(ch.token)
        else:
            from orders.dcv.delegation import challenge_name

            row.txt_name = challenge_name(snapshot.identifier)
            row.txt_value = client.dns01_txt_value(ch.token)
        row.save()
    if snapshot.status == "valid":
        event(order, "authz", f"{snapshot.name}: the CA already holds a valid authorization.")
    elif snapshot.challenge(choice["method"]) is None:
        raise AcmeError(
            f"{snapshot.name}: the CA offers no {choice['method']} challenge "
            f"(offered: {', '.join(c.type for c in snapshot.challenges)}).",
            permanent=True,
        )
    elif authz.manual_dns:
        event(
            order,
            "action",
            f"{snapshot.name}: add the TXT record shown below, then press “Submit to CA”.",
        )


def _answer(order: Order, authz: Authorization, client) -> None:
    from orders.acme.client import ChallengeSnapshot

    challenge = authz.chosen_challenge()
    if authz.dns_provider is not None:
        from orders.dcv.delegation import follow_cname

        fqdn = follow_cname(challenge.txt_name, nameservers=_setting("ACME_DNS_NAMESERVERS", None))
        authz.dns_provider.solver().present(fqdn, challenge.txt_value)
        event(order, "dns", f"{authz}: TXT record published at {fqdn} via {authz.dns_provider}.")
    snapshot = ChallengeSnapshot(challenge.type, challenge.url, challenge.token, "pending")
    try:
        client.answer_challenge(snapshot)
    except AcmeError:
        # Answered before a crash? Then the CA has moved on and there is nothing to redo.
        current = client.fetch_authorization(authz.url)
        theirs = current.challenge(challenge.type)
        if current.status == "pending" and (theirs is None or theirs.status == "pending"):
            raise
    Authorization.objects.filter(pk=authz.pk).update(submitted=True)
    event(order, "answer", f"{authz}: {challenge.type} challenge answered.")


def _poll_wait(interval: float, deadline: float, order: Order) -> float | None:
    """Sleep before the next poll; None (and the order due later) when this job's time is up."""
    if time.monotonic() + interval > deadline:
        Order.objects.filter(pk=order.pk).update(
            next_attempt_at=timezone.now() + timedelta(seconds=interval)
        )
        return None
    time.sleep(interval)
    return min(
        interval * _setting("ACME_POLL_BACKOFF", 1.5), _setting("ACME_POLL_MAX_INTERVAL", 10.0)
    )


def _step_validating(order: Order, deadline: float) -> bool:
    client = _client(order)
    interval = _setting("ACME_POLL_INTERVAL", 1.0)
    while True:
        pending = False
        for authz in order.authorizations.exclude(status="valid").prefetch_related("challenges"):
            snapshot = client.fetch_authorization(authz.url)
            _update_authorization(authz, snapshot)
            failure = snapshot.failure()
            if failure is not None:
                _fail(order, failure.message)
                return False
            pending = pending or snapshot.status != "valid"
        if not pending:
            _cleanup_dns(order)
            return _transition(
                order,
                State.VALIDATING,
                State.READY,
                None,
                "Every name is validated.",
                attempts=0,
            )
        interval = _poll_wait(interval, deadline, order)
        if interval is None:
            return False


def _update_authorization(authz: Authorization, snapshot) -> None:
    if snapshot.status != authz.status:
        Authorization.objects.filter(pk=authz.pk).update(status=snapshot.status)
        event(authz.order, "authz", f"{authz}: authorization {snapshot.status}.")
    for ch in snapshot.challenges:
        Challenge.objects.filter(authorization=authz, url=ch.url).update(
            status=ch.status, error=ch.error or ""
        )


def _step_ready(order: Order, deadline: float) -> bool:
    client = _client(order)
    if not _transition(
        order, State.READY, State.ISSUING, None, "Finalizing: the CSR is sent to the CA."
    ):
        return True
    client.finalize(order.acme_order_url, order.csr_pem.encode())
    return True


def _step_issuing(order: Order, deadline: float) -> bool:
    if order.kind == Order.Kind.PRIVATE_CA:  # a request stopped between the two steps
        _issue_private(order)
        return False
    client = _client(order)
    interval = _setting("ACME_POLL_INTERVAL", 1.0)
    while True:
        snapshot = client.fetch_order(order.acme_order_url, with_authorizations=False)
        if snapshot.status == "ready":  # a worker stopped before finalizing
            snapshot = client.finalize(order.acme_order_url, order.csr_pem.encode())
        if snapshot.status == "valid" and snapshot.certificate_url:
            download = client.download_certificate(snapshot)
            _store_certificate(
                order, download.fullchain_pem, alternates=[a.decode() for a in download.alternates]
            )
            return False
        if snapshot.status == "invalid":
            _fail(order, snapshot.failure().message)
            return False
        interval = _poll_wait(interval, deadline, order)
        if interval is None:
            return False


STEPS = {
    State.PENDING_VALIDATION: _step_pending,
    State.VALIDATING: _step_validating,
    State.READY: _step_ready,
    State.ISSUING: _step_issuing,
}


# --- Issued: into the inventory -----------------------------------------------------------


def _with_pool_issuers(fullchain: bytes) -> bytes:
    """The chain plus the pool's certificates above its top (the CA's root is not sent)."""
    from inventory.pki.parse import parse_bundle

    certs = parse_bundle(fullchain).certificates
    extra = b""
    top = certs[-1]
    for _ in range(5):
        if top.issuer == top.subject:
            break
        row = IssuerCertificate.objects.filter(subject=top.issuer.rfc4514_string()).first()
        if row is None:
            break
        top = row.to_x509()
        extra += top.public_bytes(serialization.Encoding.PEM)
    return fullchain.rstrip() + b"\n" + extra


def _store_certificate(
    order: Order,
    fullchain_pem: bytes,
    *,
    source: str = "acme",
    alternates: list[str] | None = None,
    from_state: str = State.ISSUING,
) -> None:
    """Import the issued chain (and the order's key) into the inventory; the order is issued."""
    from inventory.importing import apply_plan, plan_file

    data = _with_pool_issuers(fullchain_pem)
    key_pem = order.private_key_pem()
    if key_pem:
        data += key_pem
    leaf = x509.load_pem_x509_certificate(fullchain_pem)
    sha256 = leaf.fingerprint(hashes.SHA256()).hex()
    name = order.certificate.name if order.certificate else (order.certificate_name or None)
    with transaction.atomic():
        plan = plan_file(None, order.project, f"order-{order.pk}.pem", data, name=name)
        result = apply_plan(
            None,
            order.project,
            plan,
            name=name,
            labels=dict(order.labels),
            source=source,
        )
        if result.status == "rejected":
            raise AcmeError(f"The issued certificate was refused: {result.error}", permanent=True)
        version = CertificateVersion.objects.get(project=order.project, sha256=sha256)
        if version.created_by_id is None and order.requested_by_id:
            CertificateVersion.objects.filter(pk=version.pk).update(
                created_by=order.requested_by_id
            )
        if not _transition(
            order,
            from_state,
            State.ISSUED,
            None,
            f"Issued: serial {version.serial}, SHA-256 {version.sha256}.",
            issued_version=version,
            certificate=version.certificate,
            encrypted_private_key="",
            alternate_chains=alternates or [],
            next_attempt_at=None,
            last_error="",
        ):
            transaction.set_rollback(True)
            return
        RenewalPolicy.objects.get_or_create(
            certificate=version.certificate, defaults={"issuer": order.account}
        )
        record(None, "order.issued", order, sha256=version.sha256, serial=version.serial)


# --- Failure and retry --------------------------------------------------------------------


def _fail(order: Order, message: str) -> None:
    order.refresh_from_db()
    if order.state in Order.FINAL_STATES:
        return
    if not _transition(
        order,
        order.state,
        State.FAILED,
        None,
        f"Failed: {message}",
        last_error=message,
        next_attempt_at=None,
    ):
        return
    transaction.on_commit(
        lambda: order_failed.send(
            sender=Order,
            order_id=order.pk,
            certificate_id=order.certificate_id,
            is_renewal=order.is_renewal,
            message=message,
        )
    )
    _cleanup_dns(order)


def _handle_error(order: Order, exc: AcmeError) -> None:
    order.refresh_from_db()
    if order.state in Order.FINAL_STATES:
        return
    if exc.acme_type == "accountDoesNotExist" and order.attempts < 2:
        _reregister(order.account)
        exc = AcmeError(exc.message, permanent=False, retry_after=0)
    elif exc.permanent and order.acme_order_url and _ca_forgot(order):
        _replace_at_ca(order, exc)
        return
    attempts = order.attempts + 1
    if exc.permanent or attempts >= _setting("ACME_MAX_ATTEMPTS", 8):
        _fail(order, exc.detail or exc.message)
        return
    base = _setting("ACME_RETRY_BASE", 30.0)
    delay = exc.retry_after if exc.retry_after is not None else base * 2 ** (attempts - 1)
    delay = min(delay, _setting("ACME_RETRY_MAX", 3600.0))
    Order.objects.filter(pk=order.pk).update(
        attempts=F("attempts") + 1,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        last_error=exc.message,
    )
    event(order, "retry", f"{exc.message} — trying again in {delay:g} s (attempt {attempts}).")


def _ca_forgot(order: Order) -> bool:
    """True when the CA no longer knows the order (a CA restarted, an order expired)."""
    try:
        _client(order).fetch_order(order.acme_order_url, with_authorizations=False)
    except AcmeError as exc:
        return exc.permanent
    return False


def _replace_at_ca(order: Order, exc: AcmeError) -> None:
    """Start again at the CA with the same CSR: new order, new authorizations."""
    if order.attempts + 1 >= _setting("ACME_MAX_ATTEMPTS", 8):
        _fail(order, exc.detail or exc.message)
        return
    _cleanup_dns(order)
    with transaction.atomic():
        order.authorizations.all().delete()
        Order.objects.filter(pk=order.pk).update(
            acme_order_url="",
            finalize_url="",
            attempts=F("attempts") + 1,
            next_attempt_at=timezone.now(),
            last_error=exc.message,
        )
        event(
            order, "retry", f"The CA no longer knows this order ({exc.message}); placing it again."
        )
        if order.state != State.PENDING_VALIDATION:
            _transition(
                order, order.state, State.PENDING_VALIDATION, None, "Placing the order again."
            )


def _reregister(account: AcmeAccount) -> None:
    """The CA lost the account (a test CA restarted): register the same key again."""
    from certconsole import keyring
    from orders.acme.client import register_account

    eab_hmac = keyring.decrypt(account.encrypted_eab_hmac).decode() if account.eab_kid else None
    info = register_account(
        account.config(),
        account.account_key_pem(),
        email=account.email or None,
        agree_tos=True,
        eab_kid=account.eab_kid or None,
        eab_hmac_key=eab_hmac,
    )
    AcmeAccount.objects.filter(pk=account.pk).update(account_uri=info.uri)
    account.account_uri = info.uri


def _cleanup_dns(order: Order) -> None:
    """Remove the TXT records a provider published; a failure is logged, never raised."""
    from orders.dcv.delegation import follow_cname

    authzs = order.authorizations.filter(dns_provider__isnull=False, submitted=True)
    for authz in authzs.select_related("dns_provider").prefetch_related("challenges"):
        challenge = authz.chosen_challenge()
        if challenge is None:
            continue
        try:
            fqdn = follow_cname(
                challenge.txt_name, nameservers=_setting("ACME_DNS_NAMESERVERS", None)
            )
            authz.dns_provider.solver().cleanup(fqdn, challenge.txt_value)
        except Exception as exc:
            log.warning("DNS cleanup for order %s failed: %s", order.pk, exc)
            event(order, "dns", f"{authz}: could not remove the TXT record: {exc}")


# --- Revocation ---------------------------------------------------------------------------


def revoke_version(actor, version: CertificateVersion, reason_code: int, reason: str = "") -> None:
    """Revoke a version at the CA that issued it and mark it revoked here."""
    require(actor, "certificate.revoke", version.certificate)
    if version.status == CertificateVersion.Status.REVOKED:
        raise OrderError("This version is already revoked.")
    order = Order.objects.filter(issued_version=version).select_related("account", "ca").first()
    label = dict(REVOCATION_REASONS).get(reason_code, str(reason_code))
    if order is not None and order.kind == Order.Kind.PRIVATE_CA:
        from orders import private_ca

        with transaction.atomic():
            private_ca.revoke(actor, order.ca, version, reason_code, reason)
            _mark_revoked(actor, version, label, reason_code, reason)
        return
    account = order.account if order else None
    if account is None:
        raise OrderError("This version was not issued by an ACME account or a CA of the console.")
    cert_pem = version.to_x509().public_bytes(serialization.Encoding.PEM)
    account.client().revoke(cert_pem, reason_code)
    _mark_revoked(actor, version, label, reason_code, reason)


def _mark_revoked(actor, version: CertificateVersion, label: str, reason_code: int, reason: str):
    with transaction.atomic():
        CertificateVersion.objects.filter(pk=version.pk).update(
            status=CertificateVersion.Status.REVOKED,
            revoked_at=timezone.now(),
            revocation_reason=label,
        )
        certificate = version.certificate
        if certificate.current_version_id == version.pk:
            Certificate.objects.filter(pk=certificate.pk).update(revoked=True)
        record(
            actor,
            "certificate.revoke",
            certificate,
            reason=reason,
            sha256=version.sha256,
            reason_code=reason_code,
        )
