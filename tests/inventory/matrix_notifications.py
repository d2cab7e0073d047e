"""URL × role rows for notifications (merged into tests/access/test_url_matrix.py).

The notifications page is filtered by visible_to(): every signed-in person may open it and
sees only what they may. The policy editor needs project.manage (ProjectAdmins).
"""


def rows(expect):
    return {
        "inventory:notification-list": ("get", None, None, expect()),
        "inventory:notification-policy": (
            "get",
            lambda ctx: ["alpha"],
            None,
            expect(outsider=404, members=403, projectadmin=200),
        ),
    }
