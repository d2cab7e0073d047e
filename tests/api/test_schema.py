"""Contract test: schemathesis generates requests from /api/v1/schema/ against a live server.

Every operation, a bounded number of examples each: no 500 (the autouse guard also fails the
test on any unhandled exception), and every documented response matches its schema.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from api.models import ApiToken

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = 30
# Registering an ACME account talks to the CA at the generated URL: never from a test.
SKIP = {("POST", "/api/v1/acme-accounts/")}


def test_every_operation_matches_the_schema(live_server, personas, project, inventory_cert):
    _, secret = ApiToken.issue(
        None,
        personas["projectadmin"],
        project,
        name="contract",
        role="projectadmin",
        read_only=False,
        rate_limit="6000/min",
    )
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema/?format=json")
    headers = {"Authorization": f"Bearer {secret}"}
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]
    ran = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case):
            response = case.call(base_url=live_server.url, headers=headers, timeout=30)
            case.validate_response(response, checks=checks, headers=headers)

        check()
        ran.append(f"{operation.method.upper()} {operation.path}")
    assert len(ran) >= 30, ran
