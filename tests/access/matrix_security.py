"""URL × role rows for sign-in security pages (merged into tests/access/test_url_matrix.py).

Second factors, sessions and the security page belong to the signed-in user only; group
mappings and the MFA policy to ProjectAdmins (of their projects) and administrators.
The args builders create the objects a row needs: the viewer's own device and session.
"""

from django.contrib.auth import get_user_model
from django.utils import timezone

from certconsole.access.models import GroupMapping, Project, TotpDevice, UserSession

ALL = dict(anonymous=302, outsider=302, members=302, superuser=302)
ADMINS = dict(members=403, projectadmin=200)


def _viewer():
    return get_user_model().objects.get(username="viewer")


def _viewer_device(ctx):
    device = TotpDevice(user=_viewer(), name="phone", confirmed=True)
    device.set_key(b"0" * 20)
    device.save()
    return [device.pk]


def _viewer_session(ctx):
    row = UserSession.objects.create(
        user=_viewer(), session_key="matrix-viewer-session", last_seen=timezone.now()
    )
    return [row.pk]


def _mapping(ctx):
    alpha = Project.objects.get(slug="alpha")
    return [GroupMapping.objects.create(project=alpha, source="oidc", group="g", role="viewer").pk]


def rows(expect):
    return {
        "mfa-verify": ("get", None, None, expect(**ALL)),
        "mfa-confirm": ("get", None, None, expect(outsider=302, members=302, superuser=302)),
        "oidc-start": (
            "get",
            None,
            None,
            expect(anonymous=404, outsider=404, members=404, superuser=404),
        ),
        "oidc-callback": (
            "get",
            None,
            None,
            expect(anonymous=404, outsider=404, members=404, superuser=404),
        ),
        "security": ("get", None, None, expect()),
        "mfa-enrol": ("get", None, None, expect()),
        "mfa-remove": (
            "post",
            _viewer_device,
            lambda ctx: {"code": "000000"},
            expect(outsider=404, members=404, viewer=302, superuser=404),
        ),
        "mfa-recovery-codes": ("post", None, None, expect(**ALL)),
        "session-end": (
            "post",
            _viewer_session,
            None,
            expect(outsider=404, members=404, viewer=302, superuser=404),
        ),
        "session-end-all": ("post", None, None, expect(**ALL)),
        "security-group-mappings": ("get", None, None, expect(**ADMINS)),
        "security-group-mapping-remove": (
            "post",
            _mapping,
            None,
            expect(outsider=404, members=403, projectadmin=302, superuser=302),
        ),
        "security-mfa-policy": (
            "get",
            lambda ctx: ["alpha"],
            None,
            expect(outsider=404, **ADMINS),
        ),
    }
