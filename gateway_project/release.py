"""`python -m gateway_project.release`: the one-shot release step of a deployment.

Run once per release, before the new version serves (compose's `migrate` service, the
Kubernetes Job): generate the secret key if none is given, apply migrations, create the admin
user, and import GATEWAY_CONFIG when it is set. Every step is idempotent. One process instead
of four `manage.py` runs: Django starts once.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gateway_project.bootstrap import ensure_secret_key

BASE_DIR = Path(__file__).resolve().parent.parent


def main() -> int:
    """Run every step; exit status 1 (with the reason on stderr) when one fails."""
    ensure_secret_key(Path(os.environ.get("GATEWAY_VAR_DIR") or BASE_DIR / "var"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gateway_project.settings")
    import django
    from django.core.management import call_command
    from django.core.management.base import CommandError

    django.setup()
    try:
        call_command("migrate", interactive=False)
        call_command("ensure_admin")
        config = os.environ.get("GATEWAY_CONFIG")
        if config:
            call_command("gateway", "import", config)
    except CommandError as error:
        sys.stderr.write(f"Release step failed: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
