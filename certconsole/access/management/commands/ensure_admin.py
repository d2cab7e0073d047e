import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from certconsole.audit import record
from certconsole.audit.context import cli_context


class Command(BaseCommand):
    help = "Create a first superuser 'admin' with a random password, only when no user exists."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, **options):
        User = get_user_model()
        with cli_context(), transaction.atomic():
            if User.objects.exists():
                return
            password = secrets.token_urlsafe(15)
            user = User.objects.create_superuser(options["username"], "", password)
            record(None, "user.create", user, superuser=True)
        self.stdout.write(
            "\n  First administrator created — this password is shown only once:\n"
            f"    user: {user.username}\n    password: {password}\n"
        )
