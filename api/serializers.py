"""What the API reads and writes; writes are validated here, then done by the app's procedures."""

import base64
import binascii

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from certconsole.access.models import Project
from certconsole.audit.models import AuditEvent
from deployments.models import Binding, Deployment, DeploymentStep, EndpointCheck, Target
from inventory.exporting import KEY_FORMATS
from inventory.models import Certificate, CertificateVersion
from orders.models import KEY_TYPES, AcmeAccount, Order, OrderEvent


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    fields = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


class ErrorSerializer(serializers.Serializer):
    """Every error response: {"error": {"code", "message", "fields"}}."""

    error = ErrorDetailSerializer()


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = ["id", "slug", "name", "description", "created_at"]


class CertificateSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    status = serializers.SerializerMethodField()
    days_left = serializers.SerializerMethodField()
    current_version = serializers.CharField(
        source="current_sha256", read_only=True, allow_null=True, help_text="SHA-256"
    )

    class Meta:
        model = Certificate
        fields = [
            "id",
            "project",
            "name",
            "source",
            "status",
            "days_left",
            "primary_domain",
            "san_count",
            "subject",
            "issuer_name",
            "key_type",
            "not_after",
            "has_private_key",
            "revoked",
            "label_env",
            "label_app",
            "label_owner",
            "labels",
            "current_version",
            "created_at",
            "updated_at",
        ]

    def get_status(self, obj) -> str:
        return obj.status()

    def get_days_left(self, obj) -> int | None:
        return obj.days_left()


class LintFindingSerializer(serializers.Serializer):
    code = serializers.CharField()
    severity = serializers.CharField()
    message = serializers.CharField()


class SanSerializer(serializers.Serializer):
    kind = serializers.CharField()
    value = serializers.CharField()


class VersionSerializer(serializers.ModelSerializer):
    certificate = serializers.PrimaryKeyRelatedField(read_only=True)
    has_private_key = serializers.SerializerMethodField()
    sans = SanSerializer(many=True, read_only=True)
    lint_findings = LintFindingSerializer(many=True, read_only=True)

    class Meta:
        model = CertificateVersion
        fields = [
            "sha256",
            "certificate",
            "sha1",
            "serial",
            "subject",
            "issuer",
            "common_name",
            "sans",
            "not_before",
            "not_after",
            "key_type",
            "key_size",
            "signature_algorithm",
            "spki_sha256",
            "chain_complete",
            "chain_trusted",
            "missing_issuer",
            "has_private_key",
            "lint_findings",
            "status",
            "revoked_at",
            "created_at",
        ]

    def get_has_private_key(self, obj) -> bool:
        return obj.private_key_id is not None


class CertificateDetailSerializer(CertificateSerializer):
    version = VersionSerializer(source="current_version", read_only=True, allow_null=True)

    class Meta(CertificateSerializer.Meta):
        fields = [*CertificateSerializer.Meta.fields, "version"]


@extend_schema_field({"type": "string", "format": "byte"})
class Base64Field(serializers.CharField):
    def to_internal_value(self, data):
        try:
            return base64.b64decode(super().to_internal_value(data), validate=True)
        except (binascii.Error, ValueError):
            raise serializers.ValidationError("Not valid base64.") from None


class ImportSerializer(serializers.Serializer):
    """A PEM/DER/PKCS#12/PKCS#7 file: multipart `file`, or base64 `content` in JSON."""

    file = serializers.FileField(required=False, help_text="multipart/form-data upload")
    content = Base64Field(required=False, help_text="The file, base64-encoded (JSON bodies)")
    filename = serializers.CharField(required=False, max_length=200, default="upload")
    password = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="For PKCS#12 or encrypted keys"
    )
    name = serializers.CharField(
        required=False, max_length=200, help_text="Import as a new version of this certificate"
    )
    owner = serializers.CharField(required=False, allow_blank=True, max_length=254, default="")
    labels = serializers.DictField(child=serializers.CharField(max_length=100), required=False)
    store_unmatched_keys = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs):
        upload = attrs.pop("file", None)
        if upload is not None:
            attrs["data"] = upload.read()
            attrs["filename"] = upload.name[:200]
        elif "content" in attrs:
            attrs["data"] = attrs.pop("content")
        else:
            raise serializers.ValidationError({"file": "Send a file, or its base64 `content`."})
        return attrs


class ImportResultSerializer(serializers.Serializer):
    file = serializers.CharField()
    status = serializers.ChoiceField(choices=["imported", "duplicate", "rejected"])
    error = serializers.CharField(allow_null=True)
    certificates = serializers.ListField(child=serializers.DictField())
    keys = serializers.IntegerField()


class KeyExportSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=list(KEY_FORMATS), default="p12")
    passphrase = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    reason = serializers.CharField(max_length=500, help_text="Recorded in the audit log")
    version = serializers.CharField(
        required=False, max_length=64, help_text="SHA-256; default current"
    )


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class RequiredReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=500)


class OrderEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = OrderEvent
        fields = ["at", "kind", "message"]


class OrderSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    account = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    certificate = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    issued_version = serializers.SlugRelatedField(
        slug_field="sha256", read_only=True, allow_null=True
    )
    domains = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Order
        fields = [
            "id",
            "project",
            "kind",
            "account",
            "certificate",
            "certificate_name",
            "domains",
            "key_type",
            "is_renewal",
            "state",
            "attempts",
            "last_error",
            "issued_version",
            "created_at",
            "updated_at",
        ]


class OrderDetailSerializer(OrderSerializer):
    events = OrderEventSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "events"]


class OrderCreateSerializer(serializers.Serializer):
    account = serializers.IntegerField(help_text="ACME account id (same project as the token)")
    domains = serializers.ListField(
        child=serializers.CharField(max_length=253), min_length=1, max_length=100
    )
    key_type = serializers.ChoiceField(choices=[k for k, _ in KEY_TYPES], default="ec-p256")
    certificate_name = serializers.CharField(required=False, allow_blank=True, max_length=200)
    labels = serializers.DictField(child=serializers.CharField(max_length=100), required=False)


class AcmeAccountSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = AcmeAccount
        fields = ["id", "project", "name", "directory_url", "email", "account_uri", "created_at"]


class AcmeAccountCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    directory_url = serializers.URLField(max_length=500)
    email = serializers.EmailField(required=False, allow_blank=True, default="")
    agree_tos = serializers.BooleanField()
    ca_bundle = serializers.CharField(required=False, allow_blank=True, default="")


class TargetSerializer(serializers.ModelSerializer):
    project = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Target
        fields = ["id", "project", "name", "kind", "allow_private_key", "created_at", "updated_at"]


class BindingSerializer(serializers.ModelSerializer):
    certificate = serializers.PrimaryKeyRelatedField(read_only=True)
    target = serializers.PrimaryKeyRelatedField(read_only=True)
    deployed_version = serializers.SlugRelatedField(
        slug_field="sha256", read_only=True, allow_null=True
    )
    sni_names = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = Binding
        fields = [
            "id",
            "certificate",
            "target",
            "sni_names",
            "probe_host",
            "probe_port",
            "wave",
            "auto_redeploy",
            "deployed_version",
            "deployed_at",
            "created_at",
        ]


class TargetCreateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=Target.Kind.choices)
    options = serializers.DictField(required=False, default=dict)
    credentials = serializers.DictField(
        required=False, allow_null=True, default=None, help_text="Write-only; stored encrypted."
    )


class BindingCreateSerializer(serializers.Serializer):
    certificate = serializers.IntegerField()
    target = serializers.IntegerField()
    sni_names = serializers.ListField(child=serializers.CharField(max_length=255), min_length=1)
    probe = serializers.CharField(max_length=300, help_text="host:port to verify with a handshake")
    wave = serializers.IntegerField(min_value=1, max_value=100, default=1)
    auto_redeploy = serializers.BooleanField(default=True)


class StepSerializer(serializers.ModelSerializer):
    binding = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta:
        model = DeploymentStep
        fields = ["binding", "wave", "state", "summary", "error", "started_at", "finished_at"]


class DeploymentSerializer(serializers.ModelSerializer):
    certificate = serializers.PrimaryKeyRelatedField(read_only=True)
    version = serializers.SlugRelatedField(slug_field="sha256", read_only=True)

    class Meta:
        model = Deployment
        fields = [
            "id",
            "certificate",
            "version",
            "state",
            "is_rollback",
            "pause_between_waves",
            "current_wave",
            "reason",
            "trigger",
            "last_error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class DeploymentDetailSerializer(DeploymentSerializer):
    steps = StepSerializer(many=True, read_only=True)

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "steps"]


class DeploymentStartSerializer(serializers.Serializer):
    certificate = serializers.IntegerField()
    version = serializers.CharField(
        required=False, max_length=64, help_text="SHA-256; default current"
    )
    pause_between_waves = serializers.BooleanField(default=False)
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)


class RollbackSerializer(serializers.Serializer):
    certificate = serializers.IntegerField()
    reason = serializers.CharField(max_length=500)


class EndpointCheckSerializer(serializers.ModelSerializer):
    binding = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)

    class Meta:
        model = EndpointCheck
        fields = [
            "id",
            "binding",
            "host",
            "port",
            "server_name",
            "checked_at",
            "ok",
            "error",
            "served_sha256",
            "expected_sha256",
            "drift",
            "hostname_matches",
            "chain_complete",
            "protocol",
            "not_after",
            "elapsed_ms",
        ]


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_name",
            "source",
            "ip",
            "project_name",
            "action",
            "target_type",
            "target_id",
            "target_label",
            "detail",
            "reason",
            "hash",
        ]


class CertificateAuthoritySerializer(serializers.Serializer):
    """A private CA of the project (read-only here)."""

    id = serializers.IntegerField()
    project = serializers.CharField(source="project.slug")
    name = serializers.CharField()
    parent = serializers.IntegerField(source="parent_id", allow_null=True)
    status = serializers.CharField()
    subject = serializers.CharField()
    key_type = serializers.CharField()
    not_after = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
