"""`manage.py mfa_reset USERNAME`: remove a person's two-factor devices (lost phone and codes)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.mfa import devices_reset
from accounts.models import User


class Command(BaseCommand):
    """Remove every TOTP device and recovery code of one user."""

    help = (
        "Remove a user's two-factor devices (authenticator app and recovery codes). They log in "
        "with the password alone until they set it up again (superusers are sent to the set-up "
        "page when GATEWAY_ADMIN_REQUIRE_MFA=true)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """USERNAME."""
        parser.add_argument("username", help="the user whose devices to remove")

    def handle(self, *args: Any, **options: Any) -> None:
        """Reset the devices, or exit 1 naming the unknown user."""
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(
                f"No user named {username!r}. Check the spelling (user names are "
                "case-sensitive) or list users in the console under Accounts > Users."
            )
        removed = devices_reset(user=user)
        if removed == 0:
            self.stdout.write(f"{username} had no two-factor devices; nothing changed.")
            return
        self.stdout.write(
            f"Removed {removed} two-factor device(s) of {username}: they log in with the "
            "password alone until they set up two-factor authentication again."
        )
