"""`manage.py gateway_docs SERVICE`: a service's OpenAPI document as gateway clients see it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from management.portal.selectors import public_base_url, service_document
from routing.models import Service


class Command(BaseCommand):
    """Print (or write) a service's rewritten OpenAPI document, e.g. to generate an SDK."""

    help = "Write a service's OpenAPI document, rewritten to the gateway's routes, as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        """SERVICE, --server and --output."""
        parser.add_argument("service", help="The service's name.")
        parser.add_argument(
            "--server",
            default=None,
            help="The gateway's base URL clients use (default GATEWAY_PUBLIC_URL, else "
            "http://GATEWAY_BIND).",
        )
        parser.add_argument("--output", help="Write to this file instead of standard output.")

    def handle(self, *args: Any, **options: Any) -> None:
        """Fetch, rewrite and write the document."""
        name = options["service"]
        service = Service.objects.filter(name=name).exclude(openapi="").first()
        if service is None:
            raise CommandError(f"No service named {name!r} declares an openapi document.")
        server = (options["server"] or public_base_url()).rstrip("/")
        result = service_document(service, server_url=server)
        if result.spec is None:
            raise CommandError(f"The document of {name} is unavailable: {result.error}.")
        text = json.dumps(result.spec, indent=2)
        if options.get("output"):
            Path(options["output"]).write_text(text)
            self.stderr.write(f"Wrote {options['output']}.")
        else:
            self.stdout.write(text)
