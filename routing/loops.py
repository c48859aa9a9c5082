"""Loop detection with Via (RFC 9110 section 7.6.3): this gateway's own entry coming back is 508.

The gateway adds `Via: 1.1 <name>` to every forwarded request and every proxied answer. The name
is GATEWAY_NODE_NAME, else a pseudonym derived from SECRET_KEY: the same on every node of one
deployment (a loop through another node is caught too) and revealing no host name.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# A Via received-by name: a token (RFC 9110), so it cannot break the header's list syntax.
_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,64}")


@cache
def via_name() -> str:
    """This gateway's received-by name in Via."""
    configured = settings.GATEWAY_NODE_NAME.strip()
    if configured:
        if not _NAME.fullmatch(configured):
            raise ImproperlyConfigured(
                "GATEWAY_NODE_NAME must be one token of letters, digits and -._~ (no spaces, "
                "commas or colons), at most 64 characters."
            )
        return configured
    digest = hmac.new(settings.SECRET_KEY.encode(), b"gateway-via-name", hashlib.sha256)
    return "gw-" + digest.hexdigest()[:12]


def came_back(via: str | None) -> bool:
    """Whether a request's Via header already holds this gateway's own entry."""
    if not via:
        return False
    name = via_name().lower()
    if name not in via.lower():  # the usual case: one substring test
        return False
    for entry in via.split(","):
        fields = entry.split()
        if len(fields) >= 2 and fields[1].lower() == name:
            return True
    return False


def via_with_ours(via: str | None) -> str:
    """The Via value to send on: the received one (if any) with this gateway's entry appended."""
    ours = f"1.1 {via_name()}"
    return f"{via}, {ours}" if via else ours
