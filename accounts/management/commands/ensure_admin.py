"""`manage.py ensure_admin`: create the console's admin user, never with a fixed password."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from gateway_project.env import env_secret


class Command(BaseCommand):
    """Create (or update) the admin user from GATEWAY_ADMIN_USER / GATEWAY_ADMIN_PASSWORD."""

    help = (
        "Create the admin user named by GATEWAY_ADMIN_USER (default admin). The password is "
        "GATEWAY_ADMIN_PASSWORD, or a generated one printed once."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        """Create the user if missing; set the password when one is given."""
        username = os.environ.get("GATEWAY_ADMIN_USER", "admin")
        password = env_secret("GATEWAY_ADMIN_PASSWORD")  # or GATEWAY_ADMIN_PASSWORD_FILE
        user_model = get_user_model()
        user = user_model.objects.filter(username=username).first()
        if user is not None:
            if password:
                user.set_password(password)
                user.save(update_fields=["password"])
                self.stdout.write(f"Admin user '{username}': password set from the environment.")
            else:
                self.stdout.write(f"Admin user '{username}' exists; password unchanged.")
            return
        generated = not password
        password = password or secrets.token_urlsafe(18)
        user_model.objects.create_superuser(username=username, password=password, email="")
        if generated:
            self.stdout.write(
                self.style.WARNING(
                    f"Created admin user '{username}' with the generated password: {password}\n"
                    "It is shown only this once; set GATEWAY_ADMIN_PASSWORD to choose your own."
                )
            )
        else:
            self.stdout.write(f"Created admin user '{username}'.")
