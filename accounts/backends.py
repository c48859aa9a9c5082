"""The login-throttling authentication backend."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.http import HttpRequest


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' lockout check for logins that come with a request (the token endpoint, forms)."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        """Refuse locked-out (account, address) pairs; calls without a request are not throttled."""
        # Without a request there is no address to key on (scripts, the test client's login()).
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)
