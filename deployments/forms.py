"""Forms for targets, bindings, deployments and endpoints: validate and normalise, nothing more."""

import ipaddress
import json
import re

from django import forms
from django.db import transaction

from certconsole.access.models import Project
from certconsole.audit import record
from deployments.drivers import KIND_LABELS, DriverError
from deployments.models import Binding, Target
from deployments.rollout import validate_options
from inventory.models import Certificate

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")

OPTION_EXAMPLES = {
    "nginx_local": {
        "fullchain_path": "/etc/nginx/tls/example.pem",
        "key_path": "/etc/nginx/tls/example.key",
        "test_command": ["nginx", "-t"],
        "reload_command": ["nginx", "-s", "reload"],
    },
    "ssh": {
        "host": "web1.example.com",
        "port": 22,
        "username": "deploy",
        "fullchain_path": "/etc/nginx/tls/example.pem",
        "key_path": "/etc/nginx/tls/example.key",
        "check_command": "sudo nginx -t",
        "reload_command": "sudo systemctl reload nginx",
    },
    "haproxy": {"socket": "/run/haproxy/admin.sock", "crt_path": "/etc/haproxy/certs/site.pem"},
    "webhook": {"url": "https://hooks.example.com/certconsole", "include_key": False},
    "manual": {
        "instructions": "Install on the load balancer through its admin page.",
        "fullchain_path": "/etc/ssl/site.pem",
        "key_path": "/etc/ssl/site.key",
    },
}
CREDENTIAL_EXAMPLES = {
    "ssh": {"private_key": "-----BEGIN OPENSSH PRIVATE KEY-----…", "passphrase": "…"},
    "webhook": {"secret": "a long random HMAC secret"},
}


def examples(by_kind: dict) -> list[tuple[str, str]]:
    """(kind label, pretty JSON) for the form's per-kind examples."""
    return [
        (KIND_LABELS[kind], json.dumps(value, indent=2, ensure_ascii=False))
        for kind, value in by_kind.items()
    ]


def dns_name(value: str) -> str:
    """A host name, lower-cased and IDNA-encoded; ValidationError if it is not one."""
    name = value.strip().rstrip(".").lower()
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        raise forms.ValidationError(f"“{value}” is not a valid DNS name.") from None
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise forms.ValidationError(f"“{value}” is not a valid DNS name (like www.example.com).")
    return name


def host_port(value: str, default_port: int = 443) -> tuple[str, int]:
    """Parse host:port, [v6]:port or a bare host; ValidationError on nonsense."""
    text = value.strip()
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\s]+)(?::(\d+))?", text)
    if not match:
        raise forms.ValidationError("Write host:port, e.g. 127.0.0.1:443 or [::1]:8443.")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4) or default_port)
    if not 1 <= port <= 65535:
        raise forms.ValidationError("The port must be between 1 and 65535.")
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        if match.group(1):
            raise forms.ValidationError(f"“{host}” is not an IPv6 address.") from None
    if host == "localhost":
        return host, port
    return dns_name(host), port


def _json_object(value: str, what: str) -> dict:
    if not value.strip():
        return {}
    try:
        data = json.loads(value)
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(
            f"This is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
        ) from None
    if not isinstance(data, dict):
        raise forms.ValidationError(f'The {what} must be a JSON object: {{"key": value, …}}.')
    return data


class SecretTextarea(forms.Textarea):
    """A textarea that never renders its value back: credentials are write-only."""

    def format_value(self, value):
        return None


class ProjectChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Project) -> str:
        return obj.name


class _ProjectForm(forms.Form):
    """A form whose first field picks one of the projects where the user holds a permission."""

    project = ProjectChoiceField(queryset=Project.objects.none(), empty_label=None)

    def __init__(self, *args, projects, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["project"].queryset = projects
        if len(projects) == 1:
            self.fields["project"].widget = forms.HiddenInput()


class TargetForm(_ProjectForm):
    option_examples = examples(OPTION_EXAMPLES)
    credential_examples = examples(CREDENTIAL_EXAMPLES)
    name = forms.CharField(max_length=200, help_text="Unique in the project, e.g. web1 nginx.")
    kind = forms.ChoiceField(choices=list(KIND_LABELS.items()), label="Kind")
    options = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        required=False,
        help_text="A JSON object; the example for each kind is below.",
    )
    credentials = forms.CharField(
        widget=SecretTextarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        required=False,
        help_text=(
            "Optional JSON object, stored encrypted and never shown again (not even after an "
            "error: type it again then). SSH: private_key (PEM) and passphrase, or password; "
            "webhook: secret (the HMAC key)."
        ),
    )

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if not name:
            raise forms.ValidationError("Give the target a name.")
        return name

    def clean_options(self) -> dict:
        return _json_object(self.cleaned_data["options"], "options")

    def clean_credentials(self) -> dict:
        return _json_object(self.cleaned_data["credentials"], "credentials")

    def clean(self):
        data = super().clean()
        kind, options = data.get("kind"), data.get("options")
        if kind and options is not None:
            try:
                validate_options(kind, options)
            except ValueError as exc:
                self.add_error("options", str(exc))
        project, name = data.get("project"), data.get("name")
        if project and name and Target.objects.filter(project=project, name=name).exists():
            self.add_error("name", "Another target in this project has this name.")
        return data


class TargetEditForm(forms.Form):
    """Rename a target, change its options, replace or remove its credentials (audited)."""

    name = forms.CharField(max_length=200)
    options = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "spellcheck": "false"}), required=False
    )
    credentials = forms.CharField(
        label="New credentials",
        widget=SecretTextarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
        required=False,
        help_text="Leave empty to keep the stored credentials. Stored encrypted, never shown.",
    )
    remove_credentials = forms.BooleanField(required=False, label="Remove the stored credentials")
    allow_private_key = forms.BooleanField(
        required=False,
        label="Send the private key to this target",
        help_text="Turn off for webhook receivers that only need the certificate.",
    )

    def __init__(self, *args, target: Target, **kwargs):
        super().__init__(*args, **kwargs)
        self.target = target
        self.initial.update(
            name=target.name,
            options=json.dumps(target.options, indent=2, ensure_ascii=False),
            allow_private_key=target.allow_private_key,
        )
        self.fields["options"].help_text = (
            f"A JSON object for {KIND_LABELS[target.kind]}; e.g. "
            f"{json.dumps(OPTION_EXAMPLES[target.kind], ensure_ascii=False)}"
        )
        if not target.has_credentials:
            del self.fields["remove_credentials"]

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        taken = Target.objects.filter(project_id=self.target.project_id, name=name)
        if not name:
            raise forms.ValidationError("Give the target a name.")
        if taken.exclude(pk=self.target.pk).exists():
            raise forms.ValidationError("Another target in this project has this name.")
        return name

    def clean_options(self) -> dict:
        options = _json_object(self.cleaned_data["options"], "options")
        try:
            validate_options(self.target.kind, options)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        return options

    def clean_credentials(self) -> dict:
        return _json_object(self.cleaned_data["credentials"], "credentials")

    def save(self, actor) -> bool:
        """Apply and audit the change; False when nothing changed."""
        target, data = self.target, self.cleaned_data
        before = {
            "name": target.name,
            "options": target.options,
            "allow_private_key": target.allow_private_key,
        }
        after = {
            "name": data["name"],
            "options": data["options"],
            "allow_private_key": data["allow_private_key"],
        }
        credentials = ""
        if data["credentials"]:
            credentials = "replaced"
        elif data.get("remove_credentials"):
            credentials = "removed"
        if before == after and not credentials:
            return False
        with transaction.atomic():
            target.name, target.options = data["name"], data["options"]
            target.allow_private_key = data["allow_private_key"]
            if credentials:
                target.set_credentials(data["credentials"] or None)
            target.save()
            record(
                actor, "target.change", target, before=before, after=after, credentials=credentials
            )
        return True


class BindingForm(forms.Form):
    target = forms.ModelChoiceField(queryset=Target.objects.none(), empty_label=None)
    sni_names = forms.CharField(
        label="SNI names",
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text="Server names (SNI) the target serves this certificate for, one per line.",
    )
    probe = forms.CharField(
        label="Probe address",
        help_text="host:port where a live TLS handshake checks what is served, e.g. 10.0.0.5:443.",
    )
    wave = forms.IntegerField(
        min_value=1,
        max_value=99,
        initial=1,
        help_text="Rollouts go wave by wave: wave 1 first, then 2, …; a failing wave stops them.",
    )
    auto_redeploy = forms.BooleanField(
        required=False,
        initial=True,
        label="Redeploy automatically when the certificate is renewed",
    )

    def __init__(self, *args, certificate: Certificate, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["target"].queryset = Target.objects.filter(project_id=certificate.project_id)
        version = certificate.current_version
        if version is not None and "sni_names" not in self.initial:
            names = [n for n in version.dns_names if not n.startswith("*.")]
            self.initial["sni_names"] = "\n".join(names[:20])

    def clean_sni_names(self) -> list[str]:
        names, errors = [], []
        for line in self.cleaned_data["sni_names"].splitlines():
            if not line.strip():
                continue
            if line.strip().startswith("*."):
                errors.append(f"“{line.strip()}”: clients send a concrete name; list those.")
                continue
            try:
                name = dns_name(line)
            except forms.ValidationError as exc:
                errors.extend(exc.messages)
                continue
            if name not in names:
                names.append(name)
        if errors:
            raise forms.ValidationError(errors)
        if not names:
            raise forms.ValidationError("List at least one name.")
        return names

    def clean_probe(self) -> tuple[str, int]:
        return host_port(self.cleaned_data["probe"])


class VersionChoiceField(forms.ModelChoiceField):
    current_id: int | None = None

    def label_from_instance(self, obj) -> str:
        current = " (current)" if obj.pk == self.current_id else ""
        return (
            f"{obj.sha256[:12]} · serial {obj.serial[:16]} · until {obj.not_after:%Y-%m-%d}"
            f"{current}"
        )


class BindingsField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj: Binding) -> str:
        names = ", ".join(obj.sni_names[:3]) + (" …" if len(obj.sni_names) > 3 else "")
        return f"Wave {obj.wave}: {obj.target.name} — {names} (probe {obj.probe_address})"


class DeploymentStartForm(forms.Form):
    version = VersionChoiceField(queryset=Certificate.objects.none(), empty_label=None)
    bindings = BindingsField(
        queryset=Binding.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        help_text="Where to install it; all by default.",
    )
    pause_between_waves = forms.BooleanField(
        required=False, help_text="Wait for someone to press Continue after each wave."
    )
    reason = forms.CharField(
        required=False,
        max_length=500,
        help_text="Recorded in the audit log, e.g. a change ticket.",
        widget=forms.TextInput(attrs={"size": 50}),
    )

    def __init__(self, *args, certificate: Certificate, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].queryset = certificate.versions.defer("der", "sans")
        self.fields["version"].current_id = certificate.current_version_id
        bindings = certificate.bindings.select_related("target")
        self.fields["bindings"].queryset = bindings
        self.initial.setdefault("version", certificate.current_version_id)
        self.initial.setdefault("bindings", [b.pk for b in bindings])


class ReasonForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        help_text="Recorded in the audit log with your name.",
        widget=forms.TextInput(attrs={"size": 50}),
        error_messages={"required": "Say why: it is recorded in the audit log."},
    )


def ssh_fingerprint(key_line: str) -> str:
    """SHA256:… fingerprint (as `ssh-keygen -lf` prints it) of an OpenSSH public key line."""
    from deployments.drivers.ssh import parse_host_key

    try:
        return parse_host_key(key_line).fingerprint
    except DriverError as exc:
        raise forms.ValidationError(exc.message) from None


class HostKeyApprovalForm(forms.Form):
    key_line = forms.CharField(widget=forms.HiddenInput, max_length=20000)
    fingerprint = forms.CharField(widget=forms.HiddenInput, max_length=200)

    def clean(self):
        data = super().clean()
        line, shown = data.get("key_line"), data.get("fingerprint")
        if line and shown and ssh_fingerprint(line) != shown:
            raise forms.ValidationError("The key does not match the fingerprint you were shown.")
        return data


class EndpointForm(_ProjectForm):
    address = forms.CharField(label="Address", help_text="host:port, e.g. 203.0.113.7:443.")
    server_name = forms.CharField(
        label="Server name (SNI)",
        max_length=255,
        help_text="The name sent in the handshake and checked against the certificate.",
    )

    def clean_address(self) -> tuple[str, int]:
        return host_port(self.cleaned_data["address"])

    def clean_server_name(self) -> str:
        return dns_name(self.cleaned_data["server_name"])


class DiscoveryForm(_ProjectForm):
    entries = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        help_text=(
            "One per line: host:port, host:port/server name (SNI), or a loopback range with a "
            "port (127.0.0.1/30:8443). Certificates not yet in the inventory are imported."
        ),
    )

    def clean_entries(self) -> list[str]:
        entries = [line.strip() for line in self.cleaned_data["entries"].splitlines()]
        entries = [e for e in entries if e and not e.startswith("#")]
        if not entries:
            raise forms.ValidationError("List at least one address.")
        if len(entries) > 1000:
            raise forms.ValidationError("At most 1000 lines at a time.")
        return entries


class CheckNowForm(_ProjectForm):
    pass
