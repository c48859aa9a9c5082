"""Services (with their targets) and the routes that lead to them."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from accounts.models import Permission, Role
from audit.models import tracked
from routing.configfile.spec import RouteSpec
from routing.paths import pattern_errors

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

service_name_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9-]*$",
    "Use lower-case letters, digits and '-', starting with a letter or digit, like rd-service.",
)


def validate_upstream_url(value: str) -> None:
    """Accept only absolute http(s) URLs without credentials, query or fragment."""
    from routing.upstream_urls import upstream_url_error

    error = upstream_url_error(value)
    if error:
        raise ValidationError(error)


def validate_route_pattern(value: str) -> None:
    """Accept only valid route path patterns (see routing.paths)."""
    errors = pattern_errors(value)
    if errors:
        raise ValidationError(errors)


class Service(models.Model):
    """An upstream service: one URL, or several weighted targets."""

    class LoadBalancing(models.TextChoices):
        """How requests are spread over the service's targets."""

        ROUND_ROBIN = "round_robin", "weighted round robin"
        LEAST_REQUESTS = "least_requests", "least requests in flight (per weight)"

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[service_name_validator],
        help_text="Short name routes refer to, e.g. rd-service.",
    )
    url = models.CharField(
        "URL",
        max_length=500,
        blank=True,
        validators=[validate_upstream_url],
        help_text="Where the service listens, e.g. http://10.0.0.5:9001. Leave empty and add "
        "targets below to balance over several instances. The environment variable "
        "GATEWAY_SERVICE_{NAME}_URL (the name in capitals, '-' as '_') overrides it.",
    )
    openapi = models.CharField(
        "OpenAPI",
        max_length=255,
        blank=True,
        help_text="Path of the service's OpenAPI document, e.g. /openapi.json (for the docs).",
    )
    health_check_path = models.CharField(
        max_length=255, blank=True, help_text="Path the gateway probes, e.g. /health."
    )
    health_check_interval_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="How often to probe, in milliseconds."
    )
    connect_timeout_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Milliseconds to wait for a connection; empty uses GATEWAY_CONNECT_TIMEOUT.",
    )
    load_balancing = models.CharField(
        max_length=20,
        choices=LoadBalancing.choices,
        default=LoadBalancing.ROUND_ROBIN,
        help_text="Weighted round robin, or the target with the fewest requests in flight.",
    )
    description = models.CharField(max_length=255, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked(excluded=("updated_at",))

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        """A service needs either a URL or targets, and the health check needs a path."""
        if self.health_check_interval_ms and not self.health_check_path:
            raise ValidationError(
                {"health_check_path": "Give the path to probe, or clear the interval."}
            )


class Target(models.Model):
    """One instance of a service, with a load-balancing weight."""

    service = models.ForeignKey(Service, on_delete=models.CASCADE, related_name="targets")
    url = models.CharField(
        "URL",
        max_length=500,
        validators=[validate_upstream_url],
        help_text="Where this instance listens, e.g. http://10.0.0.5:9001.",
    )
    weight = models.PositiveIntegerField(
        default=100, help_text="Share of traffic relative to the other targets; 0 drains it."
    )
    registered = models.BooleanField(
        default=False,
        editable=False,
        help_text="Added through the registry API; leaves rotation when its heartbeat lapses.",
    )
    lease_ttl_ms = models.PositiveIntegerField(
        null=True, blank=True, editable=False, help_text="Heartbeat lease length (registered)."
    )
    # The lease as last written to the database; heartbeats extend it in Redis and write here
    # only when half of it has passed, so heartbeats do not write the database every time.
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)

    history = tracked(excluded=("lease_expires_at",))

    class Meta:
        ordering = ["service", "url"]
        constraints = [
            models.UniqueConstraint(fields=["service", "url"], name="unique_target_per_service")
        ]

    def __str__(self) -> str:
        return f"{self.url} (weight {self.weight})"


class Route(models.Model):
    """A path pattern (and methods) leading to a service, with its policies."""

    class Authentication(models.TextChoices):
        """Whether a route needs credentials."""

        REQUIRED = "required", "required: callers must authenticate"
        OPTIONAL = "optional", "optional: anonymous callers pass, known ones are identified"
        NONE = "none", "none: credentials are ignored"

    class RatePeriod(models.TextChoices):
        """The period a rate limit's request count refers to."""

        SECOND = "second"
        MINUTE = "minute"
        HOUR = "hour"

    class RateAlgorithm(models.TextChoices):
        """How a rate limit counts."""

        TOKEN_BUCKET = "token_bucket", "token bucket (allows bursts)"
        SLIDING_WINDOW = "sliding_window", "sliding window (no bursts at window edges)"

    path = models.CharField(
        max_length=500,
        validators=[validate_route_pattern],
        help_text="Path pattern: '*' is one segment, a final '**' any rest of the path, e.g. "
        "/api/v1/rd/**.",
    )
    methods = models.CharField(
        max_length=100,
        blank=True,
        help_text="Comma-separated HTTP methods, e.g. GET,POST. Empty accepts every method.",
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="routes")
    strip_prefix = models.BooleanField(
        default=False, help_text="Drop the literal part before '**' when forwarding."
    )
    timeout_ms = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Milliseconds the upstream has to answer; empty uses GATEWAY_DEFAULT_TIMEOUT.",
    )
    retry = models.PositiveSmallIntegerField(
        default=0, help_text="Retries after a failed attempt; idempotent methods only."
    )
    circuit_breaker_threshold = models.PositiveIntegerField(
        null=True, blank=True, help_text="Consecutive failures that open the circuit."
    )
    circuit_breaker_timeout_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Milliseconds the circuit stays open before a probe."
    )
    rate_limit_requests = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests allowed per period and consumer."
    )
    rate_limit_period = models.CharField(
        max_length=10, choices=RatePeriod.choices, default=RatePeriod.MINUTE
    )
    rate_limit_burst = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests that may pass at once; empty means the same as the rate.",
    )
    rate_limit_algorithm = models.CharField(
        max_length=20, choices=RateAlgorithm.choices, default=RateAlgorithm.TOKEN_BUCKET
    )
    rate_limit_headers = models.BooleanField(
        default=True, help_text="Send RateLimit-* headers to clients."
    )
    authentication = models.CharField(
        max_length=10, choices=Authentication.choices, default=Authentication.REQUIRED
    )
    permissions = models.ManyToManyField(
        Permission,
        blank=True,
        related_name="routes",
        help_text="The caller needs ALL of these permissions.",
    )
    roles = models.ManyToManyField(
        Role, blank=True, related_name="routes", help_text="The caller needs ANY ONE of these."
    )
    priority = models.IntegerField(
        default=0,
        help_text="Higher wins when several routes match; equal priorities go to the most "
        "specific pattern.",
    )
    enabled = models.BooleanField(default=True, help_text="Disabled routes answer 404.")
    description = models.CharField(max_length=255, blank=True)
    # Route policies (CONTRACT section 5), as routing.configfile.spec.RouteSpec holds them.
    hide_credentials = models.BooleanField(
        default=False, help_text=RouteSpec.key("hide_credentials").help
    )
    ip_allow = models.JSONField(default=list, blank=True, help_text=RouteSpec.key("ip_allow").help)
    ip_deny = models.JSONField(default=list, blank=True, help_text=RouteSpec.key("ip_deny").help)
    cors = models.JSONField(null=True, blank=True, help_text="CorsSpec.to_json(); empty: no CORS.")
    request_headers = models.JSONField(
        null=True, blank=True, help_text="HeaderRulesSpec.to_json(); empty: none."
    )
    response_headers = models.JSONField(
        null=True, blank=True, help_text="HeaderRulesSpec.to_json(); empty: none."
    )
    validate_requests = models.BooleanField(default=False, help_text=RouteSpec.key("validate").help)
    cache_ttl_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Milliseconds answers are cached; empty: no cache."
    )
    websocket = models.BooleanField(default=False, help_text=RouteSpec.key("websocket").help)
    updated_at = models.DateTimeField(auto_now=True)

    history = tracked(m2m_fields=("permissions", "roles"), excluded=("updated_at",))

    class Meta:
        ordering = ["-priority", "path", "methods"]
        constraints = [
            models.UniqueConstraint(fields=["path", "methods"], name="unique_route_path_methods")
        ]

    def __str__(self) -> str:
        return f"{self.methods or 'ANY'} {self.path}"

    @property
    def method_list(self) -> list[str]:
        """The route's methods as a list; empty means every method."""
        return [method for method in self.methods.split(",") if method]

    def clean(self) -> None:
        """Canonicalize methods and reject unknown ones."""
        methods = sorted({m.strip().upper() for m in self.methods.split(",") if m.strip()})
        unknown = [m for m in methods if m not in HTTP_METHODS]
        if unknown:
            raise ValidationError(
                {"methods": f"Unknown method {unknown[0]}; use {', '.join(HTTP_METHODS)}."}
            )
        self.methods = ",".join(methods)
        if self.rate_limit_burst and not self.rate_limit_requests:
            raise ValidationError({"rate_limit_burst": "Set the rate first, then the burst."})


class ConfigVersion(models.Model):
    """A single row counting config changes; workers recompile when it moves."""

    version = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"config version {self.version}"
