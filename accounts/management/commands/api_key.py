"""`manage.py api_key create|revoke|list`: API keys from the command line (for scripts and ops)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.models import ApiClient, ApiKey
from accounts.services import api_key_create, api_key_revoke
from gateway_project.redis import redis_configured
from gateway_project.units import parse_duration_ms


class Command(BaseCommand):
    """Create (shown once), revoke or list API keys."""

    help = "Create, revoke or list API keys. A new key is printed once and never stored."

    def add_arguments(self, parser: CommandParser) -> None:
        """create CLIENT NAME [--expires-in 720h] | revoke PREFIX | list [CLIENT]."""
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="create a key for an API client")
        create.add_argument("client", help="the API client's name")
        create.add_argument("name", help="what the key is for, e.g. production")
        create.add_argument("--expires-in", help="lifetime such as 720h; default: never")
        revoke = actions.add_parser("revoke", help="revoke a key by its prefix")
        revoke.add_argument("prefix", help="the 8 characters after gwk_")
        listing = actions.add_parser("list", help="list keys (never the secrets)")
        listing.add_argument("client", nargs="?", help="only this client's keys")

    def handle(self, *args: Any, **options: Any) -> None:
        """Run the chosen action."""
        getattr(self, f"_{options['action']}")(options)

    def _create(self, options: dict[str, Any]) -> None:
        client = ApiClient.objects.filter(name=options["client"]).first()
        if client is None:
            raise CommandError(f"No API client named {options['client']!r}.")
        expires_at = None
        if options["expires_in"]:
            try:
                milliseconds = parse_duration_ms(options["expires_in"])
            except ValueError as error:
                raise CommandError(str(error)) from None
            expires_at = timezone.now() + timedelta(milliseconds=milliseconds)
        _, raw_key = api_key_create(client=client, name=options["name"], expires_at=expires_at)
        self.stdout.write(raw_key)
        self.stderr.write("Shown only this once: store it now. Send it as the X-API-Key header.")

    def _revoke(self, options: dict[str, Any]) -> None:
        api_key = ApiKey.objects.select_related("client").filter(prefix=options["prefix"]).first()
        if api_key is None:
            raise CommandError(f"No API key with prefix {options['prefix']!r}.")
        api_key_revoke(api_key=api_key)
        self.stdout.write(f"Revoked {api_key}.")
        if not redis_configured():
            # The running gateway's lookup cache is in its own memory, out of this process' reach.
            ttl = settings.GATEWAY_CREDENTIAL_CACHE_TTL_MS / 1000
            self.stderr.write(
                f"Without REDIS_URL a running gateway refuses it within {ttl:g}s "
                "(revoking in the console applies at once)."
            )

    def _list(self, options: dict[str, Any]) -> None:
        keys = ApiKey.objects.select_related("client")
        if options["client"]:
            keys = keys.filter(client__name=options["client"])
        for api_key in keys:
            state = "revoked" if api_key.revoked_at else "active"
            if state == "active" and api_key.expires_at and api_key.expires_at <= timezone.now():
                state = "expired"
            last_used = api_key.last_used_at.isoformat() if api_key.last_used_at else "never"
            self.stdout.write(
                f"gwk_{api_key.prefix}_…  {api_key.client.name}/{api_key.name}  {state}  "
                f"last used: {last_used}"
            )
