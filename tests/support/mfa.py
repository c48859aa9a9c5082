"""Helpers for two-factor tests: enrolled users and the codes their authenticator app shows."""

from __future__ import annotations

import time

from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.mfa import recovery_codes_issue
from accounts.models import User


def totp_code(device: TOTPDevice, *, steps: int = 0) -> str:
    """The code an authenticator app shows `steps` time steps from now (django-otp accepts one
    step either side, each step once and in increasing order)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + steps * device.step
    return f"{totp.token():0{device.digits}d}"


def enrol(user: User) -> tuple[TOTPDevice, list[str]]:
    """A confirmed TOTP device and fresh recovery codes for `user`."""
    device = TOTPDevice.objects.create(user=user, name="authenticator app", confirmed=True)
    return device, recovery_codes_issue(user=user)
