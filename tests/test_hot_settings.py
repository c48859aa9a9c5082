"""Settings every proxied request reads, remembered until a setting changes."""

from __future__ import annotations

from django.conf import settings as django_settings

from gateway_project.hot_settings import hot_setting


def test_a_hot_setting_is_the_setting_and_follows_a_change(settings):
    settings.TRACE_REQUESTS = True
    assert hot_setting("TRACE_REQUESTS") is True
    settings.TRACE_REQUESTS = False
    assert hot_setting("TRACE_REQUESTS") is False


def test_a_hot_setting_is_read_once_until_a_setting_changes(settings):
    settings.GATEWAY_USAGE_TRACKING = True
    assert hot_setting("GATEWAY_USAGE_TRACKING") is True
    # Changed behind Django's back (no setting_changed): the remembered value stays.
    wrapped = vars(django_settings)["_wrapped"]  # the settings object LazySettings wraps
    wrapped.GATEWAY_USAGE_TRACKING = False
    vars(django_settings).pop("GATEWAY_USAGE_TRACKING", None)  # LazySettings' own cache
    assert django_settings.GATEWAY_USAGE_TRACKING is False
    assert hot_setting("GATEWAY_USAGE_TRACKING") is True
    # Any setting's change forgets every remembered value.
    settings.TRACE_REQUESTS = not django_settings.TRACE_REQUESTS
    assert hot_setting("GATEWAY_USAGE_TRACKING") is False


def test_a_read_under_way_when_a_setting_changes_is_not_remembered(settings, monkeypatch):
    """A value read before a change but stored after it must not outlive the change."""
    from django.core.signals import setting_changed

    from gateway_project import hot_settings

    class ChangedWhileRead:
        @property
        def TRACE_REQUESTS(self) -> str:
            setting_changed.send(sender=None, setting="TRACE_REQUESTS", value=None, enter=True)
            return "read before the change"

    settings.TRACE_REQUESTS = True
    monkeypatch.setattr(hot_settings, "settings", ChangedWhileRead())
    assert hot_setting("TRACE_REQUESTS") == "read before the change"
    monkeypatch.setattr(hot_settings, "settings", django_settings)
    assert hot_setting("TRACE_REQUESTS") is True
