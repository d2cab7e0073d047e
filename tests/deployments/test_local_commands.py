"""Managing targets must not grant a shell on the console host."""

import pytest
from django.urls import reverse

from deployments.models import Target
from deployments.rollout import create_target


def nginx_options(test_command, reload_command=("nginx", "-s", "reload")):
    return {
        "fullchain_path": "/tmp/certconsole-test/fullchain.pem",
        "key_path": "/tmp/certconsole-test/privkey.pem",
        "test_command": list(test_command),
        "reload_command": list(reload_command),
    }


@pytest.mark.parametrize(
    "command", [["sh", "-c", "id > /tmp/pwned"], ["/bin/bash", "-c", "x"], ["curl", "x"]]
)
def test_programs_outside_the_allow_list_are_refused(project, personas, command):
    with pytest.raises(ValueError, match="is not an allowed program on this host"):
        create_target(personas["deployer"], project, "web", "nginx_local", nginx_options(command))
    assert not Target.objects.exists()


def test_nginx_by_name_or_path_is_allowed(project, personas, settings):
    settings.DEPLOY_LOCAL_PROGRAMS = ["nginx"]
    options = nginx_options(["/usr/sbin/nginx", "-t"], ["nginx", "-s", "reload"])
    assert create_target(personas["deployer"], project, "web", "nginx_local", options).pk


def test_the_form_shows_the_refusal_next_to_the_options(client_for, personas):
    import json

    response = client_for("deployer").post(
        reverse("deployments:target-create"),
        {
            "project": "alpha",
            "name": "web",
            "kind": "nginx_local",
            "options": json.dumps(nginx_options(["python3", "-c", "print(1)"])),
        },
    )
    assert response.status_code == 400
    assert "“python3” is not an allowed program" in response.content.decode()
