from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path

from api import pages as api_pages
from api.metrics import metrics
from certconsole import health, views
from certconsole.access import security_views, sso
from orders import ca_views, http01

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("accounts/login/", security_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "accounts/password/",
        auth_views.PasswordChangeView.as_view(),
        name="password_change",
    ),
    path(
        "accounts/password/done/",
        auth_views.PasswordChangeDoneView.as_view(),
        name="password_change_done",
    ),
    path("projects/", include("certconsole.access.urls")),
    path("audit/", include("certconsole.audit.urls")),
    path("certificates/", include("inventory.urls")),
    path("orders/", include("orders.urls")),
    path(".well-known/acme-challenge/<str:token>", http01.acme_challenge, name="acme-challenge"),
    path("deployments/", include("deployments.urls")),
    path("api/v1/", include("api.urls")),
    path("accounts/api-tokens/", include(api_pages)),
    path("metrics", metrics, name="metrics"),
    re_path(r"^ca/(?P<pk>\d+)/crl\.(?P<ext>pem|crl)$", ca_views.ca_crl, name="ca-crl"),
    # Sign-in security (issue 9): second factors, SSO, sessions, group mappings.
    path("accounts/mfa/verify/", security_views.mfa_verify, name="mfa-verify"),
    path("accounts/mfa/confirm/", security_views.mfa_confirm, name="mfa-confirm"),
    path("accounts/sso/start/", sso.StartView.as_view(), name="oidc-start"),
    path("accounts/sso/callback/", sso.CallbackView.as_view(), name="oidc-callback"),
    path("accounts/security/", security_views.security, name="security"),
    path("accounts/security/mfa/enrol/", security_views.mfa_enrol, name="mfa-enrol"),
    path("accounts/security/mfa/<int:pk>/remove/", security_views.mfa_remove, name="mfa-remove"),
    path(
        "accounts/security/recovery-codes/",
        security_views.recovery_codes_new,
        name="mfa-recovery-codes",
    ),
    path(
        "accounts/security/sessions/<int:pk>/end/",
        security_views.session_end,
        name="session-end",
    ),
    path(
        "accounts/security/sessions/end-all/",
        security_views.session_end_all,
        name="session-end-all",
    ),
    path(
        "accounts/security/group-mappings/",
        security_views.group_mappings,
        name="security-group-mappings",
    ),
    path(
        "accounts/security/group-mappings/<int:pk>/remove/",
        security_views.group_mapping_remove,
        name="security-group-mapping-remove",
    ),
    path(
        "accounts/security/mfa-policy/<slug:slug>/",
        security_views.mfa_policy,
        name="security-mfa-policy",
    ),
]
