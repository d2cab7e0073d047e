"""REST API viewsets: each action looks the object up through the token's scope, then calls the
same procedure the web view calls (importing, exporting, issuance, renewal, rollout)."""

from contextlib import ExitStack

from django.db.models import F
from django.http import HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, filters, mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response

from api import serializers as s
from api.permissions import api_token
from certconsole import exports
from certconsole.access.models import Project
from certconsole.access.permissions import require
from certconsole.audit import record
from certconsole.audit.context import Source, audit_context
from certconsole.audit.export import jsonl_lines
from certconsole.audit.middleware import client_ip
from certconsole.audit.models import AuditEvent
from deployments import rollout
from deployments.models import Binding, Deployment, EndpointCheck, Target
from inventory import exporting, importing
from inventory.filters import CertificateFilter
from inventory.models import Certificate
from orders import issuance, renewal
from orders.acme.errors import AcmeError
from orders.models import AcmeAccount, CertificateAuthority, Order

ERRORS = {
    code: OpenApiResponse(s.ErrorSerializer, description=text)
    for code, text in {
        400: "Invalid input (per-field messages in error.fields)",
        401: "Missing, invalid, expired or revoked token",
        403: "The token's role, scope or read-only flag does not allow this",
        404: "Not in the token's project or certificate scope",
        429: "Rate limit exceeded (see Retry-After)",
    }.items()
}


def binary(content_types) -> dict:
    """A 200 file response in each of the media types it can come in."""
    return {(200, media): OpenApiTypes.BINARY for media in sorted(set(content_types))}


PUBLIC_TYPES = [spec.content_type for spec in exporting.PUBLIC_FORMATS.values()]
KEY_TYPES = [
    exporting.PEM,
    "application/zip",
    "application/x-pkcs12",
    "application/x-java-keystore",
]


def errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in (401, 429, *codes)}


class Cursor(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"


class CertificateFilterBackend(DjangoFilterBackend):
    """The web list's CertificateFilter (same filters and search); it needs the user."""

    def get_filterset_kwargs(self, request, queryset, view):
        return {**super().get_filterset_kwargs(request, queryset, view), "user": request.user}


class ApiViewSet(viewsets.GenericViewSet):
    """Audit context, the token's project and certificate scope, and catalogue permissions."""

    view_permission = ""
    # Path from the model to its certificate; a certificate-scoped token sees only rows whose
    # certificate is in scope. None: a project-level resource (refused to scoped tokens if
    # scope_hides is True).
    certificate_path: str | None = "certificate"
    scope_hides = False
    pagination_class = Cursor
    lookup_value_regex = "[0-9]+"

    def dispatch(self, request, *args, **kwargs):
        self._audit = ExitStack()
        with self._audit:
            self._audit.enter_context(audit_context(**self._audit_fields(request)))
            return super().dispatch(request, *args, **kwargs)

    def _audit_fields(self, request, principal: str = "") -> dict:
        user_agent = request.META.get("HTTP_USER_AGENT", "")
        return dict(
            source=Source.API, ip=client_ip(request), user_agent=user_agent, principal=principal
        )

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        token = api_token(request)
        if token is not None:
            fields = self._audit_fields(request, principal=f"token:{token.prefix}")
            self._audit.enter_context(audit_context(**fields))

    def base_queryset(self):
        return self.queryset.all()

    def scope(self, queryset, certificate_path: str | None = "", hides: bool | None = None):
        """Narrow to the token's project and certificates (sessions: unchanged)."""
        path = self.certificate_path if certificate_path == "" else certificate_path
        hides = self.scope_hides if hides is None else hides
        token = api_token(self.request)
        if token is None:
            return queryset
        queryset = queryset.filter(**{queryset.project_field: token.project_id})
        ids = token.certificate_ids()
        if ids is None:
            return queryset
        if path:
            return queryset.filter(**{f"{path}__in": ids})
        return queryset.none() if hides else queryset

    def get_queryset(self):
        queryset = self.base_queryset().visible_to(self.request.user, self.view_permission)
        return self.scope(queryset)

    def lookup(self, perm: str, queryset=None, certificate_path: str | None = "", **lookup):
        """One object: 404 outside the token's scope (or the user's projects), 403 without perm."""
        queryset = self.base_queryset() if queryset is None else queryset
        if api_token(self.request) is None:
            queryset = queryset.member_of(self.request.user)
        obj = self.scope(queryset, certificate_path).filter(**lookup).first()
        if obj is None:
            raise exceptions.NotFound("No such object in the token's scope.")
        require(self.request.user, perm, obj)
        return obj

    def get_object(self):
        return self.lookup(self.view_permission, pk=self.kwargs["pk"])

    def target_project(self, slug: str | None) -> Project:
        """Where a create goes: the token's project, or (sessions) the project named by slug."""
        token = api_token(self.request)
        if token is not None:
            if slug and slug != token.project.slug:
                raise exceptions.NotFound("No such project in the token's scope.")
            return token.project
        if not slug:
            raise exceptions.ValidationError({"project": ["Name the project (its slug)."]})
        project = Project.objects.member_of(self.request.user).filter(slug=slug).first()
        if project is None:
            raise exceptions.NotFound("No such project in your projects.")
        return project

    def _project_slug(self) -> str | None:
        data = self.request.data
        slug = self.request.query_params.get("project")
        slug = slug or (data.get("project") if isinstance(data, dict) else None)
        return slug if isinstance(slug, str) else None

    def refuse_scoped_create(self) -> None:
        token = api_token(self.request)
        if token is not None and token.certificate_ids() is not None:
            raise exceptions.PermissionDenied("This token is limited to some certificates.")

    def body(self, serializer_class):
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


def _attachment(exported: exporting.ExportFile) -> HttpResponse:
    return exports.attachment(exported.content, exported.content_type, exported.filename)


PROJECT_PARAM = OpenApiParameter(
    "project", str, description="Project slug (browser sessions; a token names its own)"
)


@extend_schema(tags=["projects"], responses={200: s.ProjectSerializer, **errors(404)})
class ProjectViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Project.objects.all()
    serializer_class = s.ProjectSerializer
    view_permission = "project.view"
    certificate_path = None


@extend_schema(tags=["certificates"])
class CertificateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Certificates: the web list's filters and search (`q`), cursor pages, downloads, import."""

    queryset = Certificate.objects.all()
    serializer_class = s.CertificateSerializer
    view_permission = "certificate.view"
    certificate_path = "id"
    filter_backends = [CertificateFilterBackend, filters.OrderingFilter]
    filterset_class = CertificateFilter
    ordering_fields = ["id", "not_after", "name"]
    ordering = ["not_after"]

    def base_queryset(self):
        return Certificate.objects.select_related("project").annotate(
            current_sha256=F("current_version__sha256")
        )

    def get_serializer_class(self):
        return s.CertificateDetailSerializer if self.action == "retrieve" else self.serializer_class

    def retrieve(self, request, pk=None):
        certificate = self.get_object()
        return Response(s.CertificateDetailSerializer(certificate).data)

    @extend_schema(responses={200: s.VersionSerializer(many=True), **errors(404)})
    @action(detail=True, methods=["get"], url_name="versions", pagination_class=None)
    def versions(self, request, pk=None):
        certificate = self.get_object()
        versions = certificate.versions.order_by("-not_before", "-id")
        return Response(s.VersionSerializer(versions, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "fmt", str, OpenApiParameter.PATH, enum=list(exporting.PUBLIC_FORMATS)
            ),
            OpenApiParameter("version", str, description="SHA-256 of a version; default current"),
        ],
        responses={**binary(PUBLIC_TYPES), **errors(403, 404)},
    )
    @action(
        detail=True, methods=["get"], url_path=r"download/(?P<fmt>[a-z0-9-]+)", url_name="download"
    )
    def download(self, request, pk=None, fmt=None):
        certificate = self.lookup("certificate.download", pk=pk)
        if fmt not in exporting.PUBLIC_FORMATS:
            raise exceptions.NotFound("No such download format.")
        version = self._version(certificate, request.query_params.get("version"))
        return _attachment(exporting.public_file(version, fmt))

    @extend_schema(
        request=s.KeyExportSerializer,
        responses={**binary(KEY_TYPES), **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["post"], url_path="export-key", url_name="export-key")
    def export_key(self, request, pk=None):
        """The private key (KeyCustodian or ProjectAdmin tokens, not read-only); audited."""
        if api_token(request) is None:
            # A browser session re-authenticates on the key export page instead.
            raise exceptions.PermissionDenied("Export keys by API with a token.")
        certificate = self.lookup("certificate.export_key", pk=pk)
        data = self.body(s.KeyExportSerializer)
        version = self._version(certificate, data.get("version"))
        exported = exporting.export_key(
            request.user,
            version,
            data["format"],
            reason=data["reason"],
            passphrase=data["passphrase"],
        )
        return _attachment(exported)

    @extend_schema(
        request={"multipart/form-data": s.ImportSerializer, "application/json": s.ImportSerializer},
        parameters=[PROJECT_PARAM],
        responses={
            201: s.ImportResultSerializer,
            200: s.ImportResultSerializer,
            **errors(400, 403, 404),
        },
    )
    @action(detail=False, methods=["post"], url_path="import", url_name="import")
    def import_file(self, request):
        """Import a file (PEM, DER, PKCS#7, PKCS#12, maybe with its key) via inventory.importing."""
        project = self.target_project(self._project_slug())
        require(request.user, "certificate.create", project)
        data = self.body(s.ImportSerializer)
        self._check_import_scope(data.get("name"))
        password = data.get("password", "").encode() or None
        plan = importing.plan_file(
            request.user, project, data["filename"], data["data"], password, name=data.get("name")
        )
        result = importing.apply_plan(
            request.user,
            project,
            plan,
            name=data.get("name"),
            owner=data["owner"],
            labels=data.get("labels"),
            store_unmatched_keys=data["store_unmatched_keys"],
        )
        if result.status == "rejected":
            raise exceptions.ValidationError({"file": [result.error]})
        code = status.HTTP_201_CREATED if result.status == "imported" else status.HTTP_200_OK
        return Response(result.as_json(), status=code)

    def _check_import_scope(self, name: str | None) -> None:
        token = api_token(self.request)
        if token is None or token.certificate_ids() is None:
            return
        if not name or not token.certificates.filter(name=name).exists():
            raise exceptions.PermissionDenied(
                "This token is limited to some certificates: import a new version of one of "
                "them by giving its name."
            )

    @extend_schema(
        request=s.ReasonSerializer, responses={201: s.OrderSerializer, **errors(400, 403, 404)}
    )
    @action(detail=True, methods=["post"], url_name="renew")
    def renew(self, request, pk=None):
        certificate = self.lookup("certificate.renew", pk=pk)
        data = self.body(s.ReasonSerializer)
        order = renewal.start_renewal(request.user, certificate, reason=data["reason"])
        return Response(s.OrderSerializer(order).data, status=status.HTTP_201_CREATED)

    @staticmethod
    def _version(certificate, sha256):
        version = exporting.version_of(certificate, sha256)
        if version is None:
            raise exceptions.NotFound("This certificate has no such version.")
        return version


@extend_schema(tags=["orders"])
class OrderViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Orders and their timeline; create, approve, reject, cancel through orders.issuance."""

    queryset = Order.objects.all()
    serializer_class = s.OrderSerializer
    view_permission = "order.view"

    def base_queryset(self):
        return Order.objects.select_related("project", "issued_version")

    @extend_schema(responses={200: s.OrderDetailSerializer, **errors(404)})
    def retrieve(self, request, pk=None):
        order = self.get_object()
        return Response(s.OrderDetailSerializer(order).data)

    @extend_schema(
        request=s.OrderCreateSerializer,
        parameters=[PROJECT_PARAM],
        responses={201: s.OrderSerializer, **errors(400, 403, 404)},
    )
    def create(self, request):
        project = self.target_project(self._project_slug())
        require(request.user, "order.create", project)
        self.refuse_scoped_create()
        data = self.body(s.OrderCreateSerializer)
        account = AcmeAccount.objects.filter(project=project, pk=data["account"]).first()
        if account is None:
            raise exceptions.ValidationError({"account": ["No such ACME account in this project."]})
        order = issuance.create_order(
            request.user,
            project,
            account=account,
            domains=[d.strip().lower() for d in data["domains"]],
            key_type=data["key_type"],
            certificate_name=data.get("certificate_name", ""),
            labels=data.get("labels"),
        )
        return Response(s.OrderSerializer(order).data, status=status.HTTP_201_CREATED)

    def _decide(self, request, pk, perm, procedure, reason_serializer=s.RequiredReasonSerializer):
        order = self.lookup(perm, pk=pk)
        data = self.body(reason_serializer)
        procedure(request.user, order, data["reason"])
        order.refresh_from_db()
        return Response(s.OrderSerializer(order).data)

    @extend_schema(
        request=s.RequiredReasonSerializer,
        responses={200: s.OrderSerializer, **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["post"], url_name="approve")
    def approve(self, request, pk=None):
        return self._decide(request, pk, "order.approve", issuance.approve)

    @extend_schema(
        request=s.RequiredReasonSerializer,
        responses={200: s.OrderSerializer, **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["post"], url_name="reject")
    def reject(self, request, pk=None):
        return self._decide(request, pk, "order.approve", issuance.reject)

    @extend_schema(
        request=s.ReasonSerializer, responses={200: s.OrderSerializer, **errors(400, 403, 404)}
    )
    @action(detail=True, methods=["post"], url_name="cancel")
    def cancel(self, request, pk=None):
        return self._decide(request, pk, "order.cancel", issuance.cancel, s.ReasonSerializer)


@extend_schema(tags=["issuers"])
class AcmeAccountViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """ACME accounts (read; ProjectAdmins register new ones)."""

    queryset = AcmeAccount.objects.all()
    serializer_class = s.AcmeAccountSerializer
    view_permission = "issuer.view"
    certificate_path = None

    def base_queryset(self):
        return AcmeAccount.objects.select_related("project")

    @extend_schema(
        request=s.AcmeAccountCreateSerializer,
        parameters=[PROJECT_PARAM],
        responses={201: s.AcmeAccountSerializer, **errors(400, 403, 404)},
    )
    def create(self, request):
        project = self.target_project(self._project_slug())
        require(request.user, "issuer.manage", project)
        self.refuse_scoped_create()
        data = self.body(s.AcmeAccountCreateSerializer)
        try:
            account = AcmeAccount.register(request.user, project, **data)
        except AcmeError as exc:
            raise exceptions.ValidationError({"directory_url": [str(exc)]}) from None
        return Response(s.AcmeAccountSerializer(account).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["deployments"])
class TargetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Target.objects.all()
    serializer_class = s.TargetSerializer
    view_permission = "target.view"
    certificate_path = None

    def base_queryset(self):
        return Target.objects.select_related("project")

    @extend_schema(
        request=s.TargetCreateSerializer,
        parameters=[PROJECT_PARAM],
        responses={201: s.TargetSerializer, **errors(400, 403, 404)},
    )
    def create(self, request):
        project = self.target_project(self._project_slug())
        self.refuse_scoped_create()
        data = self.body(s.TargetCreateSerializer)
        target = rollout.create_target(
            request.user, project, data["name"], data["kind"], data["options"], data["credentials"]
        )
        return Response(s.TargetSerializer(target).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["deployments"])
class BindingViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    queryset = Binding.objects.all()
    serializer_class = s.BindingSerializer
    view_permission = "target.view"

    def base_queryset(self):
        return Binding.objects.select_related("deployed_version")

    @extend_schema(
        request=s.BindingCreateSerializer,
        responses={201: s.BindingSerializer, **errors(400, 403, 404)},
    )
    def create(self, request):
        data = self.body(s.BindingCreateSerializer)
        certificates = Certificate.objects.all()
        certificate = self.lookup(
            "target.manage", certificates, certificate_path="id", pk=data["certificate"]
        )
        targets = Target.objects.filter(project=certificate.project)
        target = self.lookup("target.manage", targets, certificate_path=None, pk=data["target"])
        host, port = rollout.parse_address(data["probe"])
        binding = rollout.create_binding(
            request.user,
            certificate,
            target,
            data["sni_names"],
            host,
            port,
            wave=data["wave"],
            auto_redeploy=data["auto_redeploy"],
        )
        return Response(s.BindingSerializer(binding).data, status=status.HTTP_201_CREATED)


@extend_schema(tags=["deployments"])
class DeploymentViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Rollouts: start (deployment.run), progress (steps), roll back (deployment.rollback)."""

    queryset = Deployment.objects.all()
    serializer_class = s.DeploymentSerializer
    view_permission = "deployment.view"

    def base_queryset(self):
        return Deployment.objects.select_related("version")

    @extend_schema(responses={200: s.DeploymentDetailSerializer, **errors(404)})
    def retrieve(self, request, pk=None):
        deployment = self.get_object()
        return Response(s.DeploymentDetailSerializer(deployment).data)

    def _certificate(self, pk: int, perm: str) -> Certificate:
        return self.lookup(perm, Certificate.objects.all(), certificate_path="id", pk=pk)

    @extend_schema(
        request=s.DeploymentStartSerializer,
        responses={201: s.DeploymentSerializer, **errors(400, 403, 404)},
    )
    def create(self, request):
        data = self.body(s.DeploymentStartSerializer)
        certificate = self._certificate(data["certificate"], "deployment.run")
        version = None
        if data.get("version"):
            version = CertificateViewSet._version(certificate, data["version"])
        deployment = rollout.start_deployment(
            request.user,
            certificate,
            version,
            pause_between_waves=data["pause_between_waves"],
            reason=data["reason"],
            trigger="api",
        )
        return Response(s.DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.RollbackSerializer,
        responses={201: s.DeploymentSerializer, **errors(400, 403, 404)},
    )
    @action(detail=False, methods=["post"], url_name="rollback")
    def rollback(self, request):
        data = self.body(s.RollbackSerializer)
        certificate = self._certificate(data["certificate"], "deployment.rollback")
        deployment = rollout.rollback_certificate(request.user, certificate, data["reason"])
        return Response(s.DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=s.RequiredReasonSerializer,
        responses={200: s.DeploymentSerializer, **errors(400, 403, 404)},
    )
    @action(detail=True, methods=["post"], url_name="cancel")
    def cancel(self, request, pk=None):
        deployment = self.lookup("deployment.run", pk=pk)
        data = self.body(s.RequiredReasonSerializer)
        return Response(
            s.DeploymentSerializer(
                rollout.cancel_deployment(request.user, deployment, data["reason"])
            ).data
        )


@extend_schema(tags=["deployments"])
class EndpointCheckViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """Live TLS checks of bindings and monitored endpoints (result, drift)."""

    queryset = EndpointCheck.objects.all()
    serializer_class = s.EndpointCheckSerializer
    view_permission = "deployment.view"
    certificate_path = "binding__certificate"


@extend_schema(tags=["audit"])
class AuditEventViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """The project's audit log (Auditor, ProjectAdmin); export as JSON Lines."""

    queryset = AuditEvent.objects.all()
    serializer_class = s.AuditEventSerializer
    view_permission = "audit.view"
    certificate_path = None
    scope_hides = True

    def scope(self, queryset, certificate_path: str | None = "", hides: bool | None = None):
        """A certificate-scoped token reads only the events about its certificates."""
        token = api_token(self.request)
        ids = token.certificate_ids() if token is not None else None
        if ids is None:
            return super().scope(queryset, certificate_path, hides)
        return queryset.filter(
            project_id=token.project_id,
            target_type="inventory.certificate",
            target_id__in=[str(i) for i in ids],
        )

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        perm = "audit.export" if self.action == "export" else "audit.view"
        user = request.user
        if not (user.is_superuser or Project.objects.visible_to(user, perm).exists()):
            raise exceptions.PermissionDenied(
                "Reading the audit log needs the Auditor or ProjectAdmin role."
            )

    @extend_schema(responses={(200, "application/jsonl"): OpenApiTypes.STR, **errors(403)})
    @action(detail=False, methods=["get"], url_name="export", pagination_class=None)
    def export(self, request):
        """Every event the token may export, oldest first, as JSON Lines (the export is audited)."""
        events = self.scope(AuditEvent.objects.visible_to(request.user, "audit.export"))
        token = api_token(request)
        record(request.user, "audit.export", token.project if token else None, format="jsonl")
        response = StreamingHttpResponse(
            jsonl_lines(events.order_by("id").iterator(chunk_size=2000)),
            content_type="application/jsonl",
        )
        response["Content-Disposition"] = content_disposition_header(True, "audit.jsonl")
        return response


@extend_schema(tags=["issuers"])
class CertificateAuthorityViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ApiViewSet):
    """The project's private CAs (read-only; they are managed in the console)."""

    queryset = CertificateAuthority.objects.all()
    serializer_class = s.CertificateAuthoritySerializer
    view_permission = "issuer.view"
    certificate_path = None

    def base_queryset(self):
        return CertificateAuthority.objects.select_related("project")
