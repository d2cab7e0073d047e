"""Browsing the inventory: list filters, search, sort, pages, CSV, detail, relabelling."""

import csv
import hashlib
import io
from datetime import timedelta

import pytest
from django.db import connection, reset_queries
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from certconsole.audit.models import AuditEvent
from inventory.models import Certificate, CertificateName, CertificateVersion
from tests.pki.factory import make_ca, make_leaf

LIST = reverse("inventory:certificate-list")
CSV = reverse("inventory:certificate-export-csv")


def make_cert(
    project,
    name,
    *,
    domains=None,
    days=90,
    issuer="R3",
    key_type="EC-P256",
    revoked=False,
    has_key=False,
    source="uploaded",
    env="",
    app="",
    owner="",
    labels=None,
    subject=None,
):
    """A certificate row with a current version, built with the ORM (no cryptography)."""
    domains = domains or [f"{name}.example.com"]
    not_after = timezone.now() + timedelta(days=days, hours=1)
    cert = Certificate.objects.create(
        project=project,
        name=name,
        source=source,
        label_env=env,
        label_app=app,
        label_owner=owner,
        labels=labels or {},
        primary_domain=domains[0],
        san_count=len(domains),
        subject=subject or f"CN={domains[0]}",
        issuer_name=issuer,
        key_type=key_type,
        not_after=not_after,
        has_private_key=has_key,
        revoked=revoked,
    )
    digest = hashlib.sha256(name.encode()).hexdigest()
    version = CertificateVersion.objects.create(
        certificate=cert,
        project=project,
        der=b"",
        sha256=digest,
        sha1=digest[:40],
        serial=digest[:32],
        subject=cert.subject,
        issuer=f"CN={issuer}",
        common_name=domains[0],
        sans=[{"kind": "dns", "value": d} for d in domains],
        not_before=not_after - timedelta(days=90),
        not_after=not_after,
        key_type=key_type,
        key_size=256,
        signature_algorithm="ecdsa-with-SHA256",
        spki_sha256=digest,
        status="revoked" if revoked else "active",
    )
    Certificate.objects.filter(pk=cert.pk).update(current_version=version)
    CertificateName.objects.bulk_create(
        [CertificateName(certificate=cert, name=d.lower()) for d in domains]
    )
    cert.refresh_from_db()
    return cert


def names(response) -> list[str]:
    return [c.name for c in response.context["page"].object_list]


@pytest.fixture
def viewer(client_for):
    return client_for("viewer")


# ---- the list --------------------------------------------------------------------------------


def test_list_shows_only_certificates_of_the_users_projects(client_for, project, other_project):
    make_cert(project, "mine")
    make_cert(other_project, "theirs")
    assert names(client_for("viewer").get(LIST)) == ["mine"]
    assert names(client_for("outsider").get(LIST)) == ["theirs"]
    assert names(client_for("auditor").get(LIST)) == []
    assert sorted(names(client_for("superuser").get(LIST))) == ["mine", "theirs"]


def test_list_shows_the_columns_people_need(viewer, project):
    make_cert(
        project,
        "shop",
        domains=["shop.example.com", "a.example.com"],
        days=10,
        issuer="R11",
        key_type="RSA-2048",
        has_key=True,
        env="prod",
        labels={"team": "pay"},
    )
    html = viewer.get(LIST).content.decode()
    for text in (
        "shop.example.com",
        "+1 more",
        "R11",
        "RSA-2048",
        "10 days left",
        '<span class="badge warn">Expiring</span>',
        "env=prod",
        "team=pay",
        "stored",
        ">Alpha</a>",
    ):
        assert text in html


@pytest.mark.parametrize(
    ("status", "expected"),
    [("valid", ["ok"]), ("expiring", ["soon"]), ("expired", ["old"]), ("revoked", ["gone"])],
)
def test_status_filter_narrows_the_list(viewer, project, status, expected):
    make_cert(project, "ok", days=200)
    make_cert(project, "soon", days=5)
    make_cert(project, "old", days=-3)
    make_cert(project, "gone", days=200, revoked=True)
    assert names(viewer.get(LIST, {"status": status})) == expected


def test_expiring_within_n_days_filter(viewer, project):
    make_cert(project, "d5", days=5)
    make_cert(project, "d40", days=40)
    make_cert(project, "d100", days=100)
    make_cert(project, "past", days=-1)
    assert names(viewer.get(LIST, {"expiring": 45})) == ["d5", "d40"]
    assert names(viewer.get(LIST, {"expiring": 0})) == []


def test_issuer_key_type_private_key_and_source_filters(viewer, project):
    make_cert(project, "a", issuer="R11", key_type="RSA-2048", has_key=True)
    make_cert(project, "b", issuer="E6", key_type="EC-P256", source="acme")
    assert names(viewer.get(LIST, {"issuer": "r1"})) == ["a"]
    assert names(viewer.get(LIST, {"key_type": "EC-P256"})) == ["b"]
    assert names(viewer.get(LIST, {"has_key": "yes"})) == ["a"]
    assert names(viewer.get(LIST, {"has_key": "no"})) == ["b"]
    assert names(viewer.get(LIST, {"source": "acme"})) == ["b"]


def test_label_filter_takes_key_value_or_a_bare_value(viewer, project):
    make_cert(project, "a", env="prod", app="shop", labels={"team": "payments"})
    make_cert(project, "b", env="staging", owner="prod")
    make_cert(project, "c", labels={"team": "search"})
    assert names(viewer.get(LIST, {"label": "env=prod"})) == ["a"]
    assert names(viewer.get(LIST, {"label": "app = shop"})) == ["a"]
    assert names(viewer.get(LIST, {"label": "team=search"})) == ["c"]
    assert sorted(names(viewer.get(LIST, {"label": "prod"}))) == ["a", "b"]


def test_project_filter_narrows_to_one_of_the_users_projects(
    client_for, personas, project, other_project
):
    from certconsole.access.models import Membership

    Membership.objects.create(user=personas["viewer"], project=other_project, role="viewer")
    make_cert(project, "a")
    make_cert(other_project, "b")
    viewer = client_for("viewer")
    assert sorted(names(viewer.get(LIST))) == ["a", "b"]
    assert names(viewer.get(LIST, {"project": "beta"})) == ["b"]


def test_project_filter_refuses_a_project_the_user_cannot_see(viewer, project, other_project):
    make_cert(other_project, "b")
    response = viewer.get(LIST, {"project": "beta"})
    assert response.status_code == 200
    assert names(response) == []
    assert "Select a valid choice" in response.content.decode()


def test_search_finds_the_wildcard_that_covers_a_domain(viewer, project):
    make_cert(project, "wild", domains=["*.example.com", "example.com"])
    make_cert(project, "other", domains=["www.example.org"])
    assert names(viewer.get(LIST, {"q": "shop.example.com"})) == ["wild"]
    assert names(viewer.get(LIST, {"q": "SHOP.Example.com."})) == ["wild"]
    assert names(viewer.get(LIST, {"q": "deep.shop.example.com"})) == []


def test_search_matches_name_prefix_and_subject(viewer, project):
    make_cert(project, "api", domains=["api.internal.test"], subject="CN=api,O=Acme Corp")
    make_cert(project, "web", domains=["web.internal.test"])
    assert names(viewer.get(LIST, {"q": "api.int"})) == ["api"]
    assert names(viewer.get(LIST, {"q": "acme corp"})) == ["api"]


def test_search_by_fingerprint_or_serial_with_colons(viewer, import_pem, issued_chain):
    cert = import_pem(issued_chain.leaf.pem)
    version = cert.current_version
    with_colons = ":".join(version.sha256[i : i + 2] for i in range(0, 20, 2)).upper()
    assert names(viewer.get(LIST, {"q": with_colons})) == [cert.name]
    assert names(viewer.get(LIST, {"q": version.sha1[:12]})) == [cert.name]
    serial = ":".join(version.serial[i : i + 2] for i in range(0, 12, 2))
    assert names(viewer.get(LIST, {"q": serial})) == [cert.name]
    assert names(viewer.get(LIST, {"q": "00:00:00:00:00:00"})) == []


def test_sorting_by_each_column_with_header_links(viewer, project):
    make_cert(project, "b", days=10, issuer="Z", key_type="RSA-2048", domains=["a.test"])
    make_cert(project, "a", days=20, issuer="Y", key_type="EC-P256", domains=["c.test"])
    make_cert(project, "c", days=30, issuer="X", key_type="Ed25519", domains=["b.test"])
    assert names(viewer.get(LIST)) == ["b", "a", "c"]
    assert names(viewer.get(LIST, {"sort": "name"})) == ["a", "b", "c"]
    assert names(viewer.get(LIST, {"sort": "-name"})) == ["c", "b", "a"]
    assert names(viewer.get(LIST, {"sort": "-expiry"})) == ["c", "a", "b"]
    assert names(viewer.get(LIST, {"sort": "domain"})) == ["b", "c", "a"]
    assert names(viewer.get(LIST, {"sort": "issuer"})) == ["c", "a", "b"]
    assert names(viewer.get(LIST, {"sort": "key"})) == ["a", "c", "b"]
    response = viewer.get(LIST, {"sort": "name", "status": "valid"})
    html = response.content.decode()
    assert 'aria-sort="ascending"' in html
    assert "?sort=-name&amp;status=valid" in html  # clicking again reverses, filters kept


def test_unknown_sort_falls_back_to_expiry(viewer, project):
    make_cert(project, "late", days=50)
    make_cert(project, "soon", days=5)
    response = viewer.get(LIST, {"sort": "password"})
    assert response.status_code == 200
    assert names(response) == ["soon", "late"]


def test_pagination_shows_50_a_page_and_n_of_m(viewer, project):
    for i in range(55):
        make_cert(project, f"c{i:02}", days=40 + i)
    first = viewer.get(LIST, {"status": "valid"})
    html = first.content.decode()
    assert len(names(first)) == 50
    assert "Showing 1–50 of 55 certificates" in html
    assert "?status=valid&amp;page=2" in html
    second = viewer.get(LIST, {"status": "valid", "page": 2})
    assert names(second) == ["c50", "c51", "c52", "c53", "c54"]
    assert "Showing 51–55 of 55" in second.content.decode()


def test_broad_search_lists_the_first_matches_and_asks_to_narrow(viewer, project, monkeypatch):
    monkeypatch.setattr("inventory.views.SEARCH_IDS", 52)
    for i in range(55):
        make_cert(project, f"c{i:02}", days=40 + i)
    response = viewer.get(LIST, {"q": "example.com", "page": 2})
    assert names(response) == ["c50", "c51"]
    assert "Showing 51–52 of 52+ certificates" in response.content.decode()
    assert "narrow the search" in response.content.decode()
    # The CSV export is not cut short.
    body = b"".join(viewer.get(CSV, {"q": "example.com"}).streaming_content).decode()
    assert body.count("example.com/") == 0 and len(body.strip().splitlines()) == 56


def test_htmx_filtering_returns_only_the_results(viewer, project):
    make_cert(project, "a")
    response = viewer.get(LIST, {"q": "a"}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="results"')
    assert "<form" not in html


def test_filter_form_live_updates_the_results_with_htmx(viewer, project):
    html = viewer.get(LIST).content.decode()
    assert 'hx-get="/certificates/"' in html
    assert 'hx-select="#results"' in html
    assert 'hx-push-url="true"' in html
    assert 'hx-trigger="input delay:400ms, change, submit"' in html


def test_bad_filter_values_show_errors_not_a_crash(viewer, project):
    make_cert(project, "a")
    response = viewer.get(LIST, {"expiring": "soon", "status": "nope", "page": "x"})
    assert response.status_code == 200
    assert names(response) == []
    assert "errorlist" in response.content.decode()


def test_empty_inventory_says_what_to_do_next(viewer, project):
    html = viewer.get(LIST).content.decode()
    assert "No certificates yet — " in html
    assert "or order one" in html


def test_no_match_offers_to_clear_the_filters(viewer, project):
    make_cert(project, "a")
    html = viewer.get(LIST, {"q": "nothing-like-this"}).content.decode()
    assert "No certificates match these filters." in html


def test_list_query_count_does_not_grow_with_rows(
    client_for, project, django_assert_max_num_queries
):
    viewer = client_for("viewer")
    for i in range(5):
        make_cert(project, f"a{i}", labels={"k": str(i)}, has_key=bool(i % 2))
    viewer.get(LIST)  # warm the session and caches
    # A request empties the query log that captures slice (lazily): start each capture from an
    # empty log and read its length before the next request.
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        assert len(names(viewer.get(LIST))) == 5
    five = len(captured)
    # Includes reading the roles (visible_to shares has_perm's cache) and the page's bindings.
    assert 0 < five <= 9
    for i in range(55):
        make_cert(project, f"b{i}", env="prod", revoked=i % 7 == 0)
    reset_queries()
    with django_assert_max_num_queries(five) as captured:
        assert len(names(viewer.get(LIST))) == 50
    assert len(captured) == five
    # A search reads its matching ids once (no separate count): one query fewer, still flat.
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        assert len(names(viewer.get(LIST, {"q": "example.com", "label": "env=prod"}))) == 50
    assert len(captured) == five - 1
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        assert len(names(viewer.get(LIST, {"q": "a1.example.com", "label": "k=1"}))) == 1
    assert len(captured) == five - 1


def test_list_reads_only_the_shown_columns(client_for, project):
    make_cert(project, "a", subject="CN=" + "x" * 5000)
    reset_queries()
    with CaptureQueriesContext(connection) as captured:
        client_for("viewer").get(LIST)
    selects = [q["sql"] for q in captured if 'FROM "inventory_certificate"' in q["sql"]]
    assert len(selects) == 3  # count, one page of ids, those rows
    for sql in selects:
        columns = sql.split(" FROM ", 1)[0]
        assert '"inventory_certificate"."subject"' not in columns
        assert "JOIN" not in sql


# ---- CSV export ------------------------------------------------------------------------------


def test_csv_export_has_the_filtered_rows_and_neutralises_formulas(viewer, project):
    make_cert(
        project,
        '=HYPERLINK("http://evil")',
        env="+prod",
        owner="@me",
        labels={"cmd": "-1+2"},
        days=20,
    )
    make_cert(project, "later", days=300)
    response = viewer.get(CSV, {"status": "expiring"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1
    row = rows[0]
    assert row["name"] == '\'=HYPERLINK("http://evil")'
    assert row["env"] == "'+prod"
    assert row["owner"] == "'@me"
    assert row["labels"] == "cmd=-1+2"
    assert row["project"] == "alpha"
    assert row["status"] == "expiring"
    assert row["days_left"] == "20"
    assert row["url"].endswith(
        reverse(
            "inventory:certificate-detail", args=[Certificate.objects.get(name__startswith="=").pk]
        )
    )


def test_csv_export_keeps_negative_days_as_numbers(viewer, project):
    make_cert(project, "old", days=-3)
    rows = list(csv.DictReader(io.StringIO(b"".join(viewer.get(CSV).streaming_content).decode())))
    assert (rows[0]["status"], rows[0]["days_left"]) == ("expired", "-3")


def test_csv_export_shows_only_visible_certificates(client_for, project, other_project):
    make_cert(project, "mine")
    make_cert(other_project, "theirs")
    body = b"".join(client_for("viewer").get(CSV).streaming_content).decode()
    assert "mine" in body
    assert "theirs" not in body


def test_csv_export_rejects_bad_filters(viewer, project):
    assert viewer.get(CSV, {"expiring": "soon"}).status_code == 400


# ---- hostile contents ------------------------------------------------------------------------


def test_hostile_certificate_renders_escaped(client_for, import_pem):
    ca = make_ca("Evil <b>CA</b>")
    leaf = make_leaf(
        ca,
        name="<script>alert(1)</script>\u202eevil",
        sans=["<img src=x>.example.com", "x.example.com"],
    )
    cert = import_pem(leaf.pem + ca.pem, name="<script>alert(2)</script>\u202etxt.exe")
    client = client_for("projectadmin")
    for url in (LIST, cert.get_absolute_url()):
        html = client.get(url).content.decode()
        assert "<script>alert" not in html
        assert "<img src=x>" not in html
        assert "<b>CA</b>" not in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
        assert "&lt;img src=x&gt;.example.com" in html
        assert "\u202e" not in html  # shown as a visible code, so it cannot reorder the text
        assert "⟨U+202E⟩" in html
    html = client.get(cert.get_absolute_url()).content.decode()
    assert "<bdi>CN=\\&lt;script\\&gt;alert(1)" in html  # the subject, escaped and isolated


def test_huge_names_are_clipped_in_the_list(viewer, project):
    make_cert(
        project, "n" * 190, domains=["d" * 250], subject="CN=" + "s" * 10_000, issuer="i" * 255
    )
    html = viewer.get(LIST).content.decode()
    assert "<bdi>" + "n" * 190 not in html
    assert '<bdi class="mono">' + "d" * 250 not in html
    assert "s" * 10_000 not in html
    assert "cell-clip" in html


def test_certificate_with_600_sans_shows_20_and_the_rest_on_demand(client_for, import_pem):
    sans = [f"host{i}.example.com" for i in range(600)]
    cert = import_pem(make_leaf(None, name="many.example.com", sans=sans).pem)
    response = client_for("viewer").get(cert.get_absolute_url())
    html = response.content.decode()
    assert response.status_code == 200
    assert "Show all 600" in html
    assert html.count("host599.example.com") == 1
    assert "+599 more" in client_for("viewer").get(LIST).content.decode()


# ---- detail ----------------------------------------------------------------------------------


def test_detail_shows_every_field_chain_lint_and_versions(client_for, inventory_cert):
    version = inventory_cert.current_version
    html = client_for("viewer").get(inventory_cert.get_absolute_url()).content.decode()
    for text in (
        version.subject,
        version.serial,
        version.sha256,
        version.sha1,
        version.spki_sha256,
        version.signature_algorithm,
        "www.example.test",
        "Test Intermediate CA",
        "Test Root CA",
        "complete",
        "trusted",
        "Lint findings",
        'id="deployments-title"',
        "days left",
        "Versions (1)",
        "stored",
    ):
        assert text in html, text
    assert 'aria-labelledby="audit-title"' not in html  # a viewer cannot read the audit log
    assert "Edit name and labels" not in html


def test_detail_shows_the_audit_events_to_those_who_may_read_them(client_for, inventory_cert):
    html = client_for("projectadmin").get(inventory_cert.get_absolute_url()).content.decode()
    assert 'aria-labelledby="audit-title"' in html
    assert "certificate.import" in html
    assert "Edit name and labels" in html


def test_detail_shows_a_missing_issuer(client_for, import_pem, issued_chain):
    cert = import_pem(issued_chain.leaf.pem)
    html = client_for("viewer").get(cert.get_absolute_url()).content.decode()
    assert "incomplete" in html
    assert "missing" in html
    assert "Test Intermediate CA" in html


def test_detail_selects_an_older_version(client_for, import_pem, issued_chain):
    older = make_leaf(issued_chain.intermediate, days=30)
    cert = import_pem(issued_chain.leaf.pem)
    import_pem(older.pem)
    versions = list(cert.versions.all())
    assert len(versions) == 2
    viewer = client_for("viewer")
    response = viewer.get(cert.get_absolute_url(), {"version": older.sha256})
    assert response.context["version"].sha256 == older.sha256
    assert "older version" in response.content.decode()
    assert viewer.get(cert.get_absolute_url(), {"version": "ab" * 32}).status_code == 404


def test_detail_is_404_outside_and_403_without_the_permission(client_for, inventory_cert):
    url = inventory_cert.get_absolute_url()
    assert client_for("outsider").get(url).status_code == 404
    assert client_for("auditor").get(url).status_code == 403
    assert (
        client_for("viewer").get(reverse("inventory:certificate-detail", args=[999999])).status_code
        == 404
    )


# ---- relabelling -----------------------------------------------------------------------------


def test_edit_saves_name_and_labels_and_audits_before_and_after(client_for, project):
    cert = make_cert(project, "old", env="dev", labels={"team": "a"})
    url = reverse("inventory:certificate-edit", args=[cert.pk])
    response = client_for("requester").post(
        url,
        {
            "name": "new",
            "label_env": "prod",
            "label_app": "shop",
            "label_owner": "ops@example.com",
            "labels_text": "team=payments\ncost-center = 42\n\n",
        },
    )
    assert response.status_code == 302
    cert.refresh_from_db()
    assert (cert.name, cert.label_env, cert.label_app) == ("new", "prod", "shop")
    assert cert.labels == {"team": "payments", "cost-center": "42"}
    event = AuditEvent.objects.get(action="certificate.change")
    assert event.target_id == str(cert.pk)
    assert event.detail["before"] == {
        "name": "old",
        "env": "dev",
        "app": "",
        "owner": "",
        "labels": {"team": "a"},
    }
    assert event.detail["after"]["labels"] == {"team": "payments", "cost-center": "42"}
    assert event.detail["after"]["name"] == "new"


def test_edit_without_changes_writes_no_audit_event(client_for, project):
    cert = make_cert(project, "same", env="dev")
    url = reverse("inventory:certificate-edit", args=[cert.pk])
    client_for("requester").post(url, {"name": "same", "label_env": "dev", "labels_text": ""})
    assert not AuditEvent.objects.filter(action="certificate.change").exists()


def test_edit_errors_keep_the_input(client_for, project):
    make_cert(project, "taken")
    cert = make_cert(project, "mine")
    url = reverse("inventory:certificate-edit", args=[cert.pk])
    response = client_for("projectadmin").post(
        url,
        {
            "name": "taken",
            "label_env": "<b>prod</b>",
            "labels_text": "no equals sign\nenv=x",
        },
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Another certificate in this project has this name." in html
    assert "Line 1: write key=value" in html
    assert "Line 2: use the env field above" in html
    assert "&lt;b&gt;prod&lt;/b&gt;" in html
    assert "no equals sign" in html
    cert.refresh_from_db()
    assert cert.name == "mine"
    assert not AuditEvent.objects.filter(action="certificate.change").exists()


def test_edit_needs_the_change_permission(client_for, project, other_project):
    cert = make_cert(project, "a")
    url = reverse("inventory:certificate-edit", args=[cert.pk])
    data = {"name": "hacked", "labels_text": ""}
    assert client_for("viewer").post(url, data).status_code == 403
    assert client_for("keycustodian").post(url, data).status_code == 403
    assert client_for("outsider").post(url, data).status_code == 404
    assert client_for("anonymous").post(url, data).status_code == 302
    cert.refresh_from_db()
    assert cert.name == "a"


def test_edit_rejects_other_methods(client_for, project):
    cert = make_cert(project, "a")
    url = reverse("inventory:certificate-edit", args=[cert.pk])
    assert client_for("requester").put(url).status_code == 405
    assert client_for("requester").post(LIST).status_code == 405


def test_the_list_says_where_each_certificate_is_deployed(client_for, project, inventory_cert):
    from deployments.models import Binding, Target

    target = Target.objects.create(project=project, name="edge", kind="manual")
    for port in (443, 8443):
        Binding.objects.create(
            project=project,
            certificate=inventory_cert,
            target=target,
            sni_names=["www.example.test"],
            probe_host="127.0.0.1",
            probe_port=port,
        )
    page = client_for("viewer").get(LIST).content.decode()
    assert "2 bindings" in page
    make_cert(project, "idle")
    assert "nowhere" in client_for("viewer").get(LIST).content.decode()
