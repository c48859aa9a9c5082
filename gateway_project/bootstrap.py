"""First-run preparation that must happen before Django settings load: the secret key."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def ensure_secret_key(var_dir: Path) -> None:
    """Generate var/secret_key once when SECRET_KEY is not given by the environment."""
    if os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE"):
        return
    path = var_dir / "secret_key"
    if path.exists():
        return
    var_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(secrets.token_urlsafe(50))
    path.chmod(0o600)
    print(f"Generated a SECRET_KEY into {path}.")


if __name__ == "__main__":
    ensure_secret_key(Path(os.environ.get("GATEWAY_VAR_DIR", "var")))
