"""The console's config upload, bounded before it is read into memory.

Two gates, both at GATEWAY_MAX_CONFIG_SIZE: a request whose Content-Length already says it is
too large is answered without reading its body, and an upload handler counts the file's bytes
as they arrive and stops the upload at the first byte past the limit (a chunked or understated
request gets no further). Django's own default would keep up to 2.5 MB in memory and write the
rest to a temporary file, which the form then read whole.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import MemoryFileUploadHandler, StopUpload
from django.http import HttpRequest

# Room for the multipart framing and the form's small fields around the file.
FORM_OVERHEAD = 64 * 1024


class LimitedUploadHandler(MemoryFileUploadHandler):
    """Keeps an uploaded file in memory up to `limit` bytes; past that, stops the upload."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.received = 0
        self.refused = False

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        """Always keep the file in memory: the limit, not Django's setting, bounds it."""
        self.activated = True

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        """Start counting a new file's bytes."""
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        """Keep the chunk, or stop the whole upload once the file passes the limit."""
        self.received += len(raw_data)
        if self.received > self.limit:
            self.refused = True
            # connection_reset: Django reads no more of the body for this request.
            raise StopUpload(connection_reset=True)
        return super().receive_data_chunk(raw_data, start)


def declared_too_large(request: HttpRequest) -> bool:
    """Whether the request's Content-Length alone puts it over the limit."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return False  # Django refuses a malformed length itself when it parses the body
    return length > settings.GATEWAY_MAX_CONFIG_SIZE + FORM_OVERHEAD


def limit_uploads(request: HttpRequest) -> LimitedUploadHandler:
    """Make `request` parse its upload through a LimitedUploadHandler; return the handler."""
    handler = LimitedUploadHandler(request, settings.GATEWAY_MAX_CONFIG_SIZE)
    request.upload_handlers = [handler]
    return handler


def too_large_message() -> str:
    """The form error for an upload over the limit."""
    limit = settings.GATEWAY_MAX_CONFIG_SIZE
    return (
        f"The file is larger than GATEWAY_MAX_CONFIG_SIZE ({limit} bytes); it was not read. "
        "Split it, or raise the setting."
    )
