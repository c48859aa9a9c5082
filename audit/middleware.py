"""Every console or management-API write is one change set, authored by the signed-in user."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from simple_history.models import HistoricalRecords

from audit.changesets import recording

_SAFE = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_MANAGED_PREFIXES = ("/admin/", "/api/gateway/")


class ChangeSetMiddleware:
    """Groups the history rows of one write request, and tells simple-history who wrote them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        """Proxied traffic and reads pass straight through: no per-request cost for them."""
        if request.method in _SAFE or not request.path.startswith(_MANAGED_PREFIXES):
            return self.get_response(request)
        HistoricalRecords.context.request = request
        try:
            # The user is resolved lazily: DRF token users are set on the view's request only.
            with recording(user=None):
                return self.get_response(request)
        finally:
            del HistoricalRecords.context.request
