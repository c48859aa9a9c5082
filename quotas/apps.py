"""The quotas app."""

from __future__ import annotations

from django.apps import AppConfig


class QuotasConfig(AppConfig):
    """Django app config for quotas."""

    name = "quotas"
    verbose_name = "Quotas"

    def ready(self) -> None:
        """Have serving processes flush usage in the background; register with audit."""
        from gateway_project import extensions
        from quotas.flusher import start_background_flusher

        extensions.register_serving_starter(start_background_flusher)
        _register_with_audit()


def _register_with_audit() -> None:
    """Quotas are the operator's to change and recorded; usage and status pages are governed."""
    from audit import registry
    from quotas.models import ClientQuotaStatus, Quota, QuotaAdjustment, Usage, UserQuotaStatus

    registry.tracked(Quota, section="quotas")
    for model in (UserQuotaStatus, ClientQuotaStatus, Usage, QuotaAdjustment):
        registry.governed(model, section="quotas")
