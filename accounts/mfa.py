"""Multi-factor authentication (django-otp): TOTP devices, recovery codes, who needs and resets them.

A confirmed TOTP device turns a password into half a login: the console asks for a code after
the password, /auth/token/ wants it in `otp`. Recovery codes are django-otp's static tokens,
each deleted when used. Secrets never leave this module except to their owner at enrolment.
"""

from __future__ import annotations

import logging
from base64 import b32encode
from io import BytesIO

import qrcode
import qrcode.image.svg
from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.http import HttpRequest
from django_otp import devices_for_user, user_has_device
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User

logger = logging.getLogger("gateway.auth")

RECOVERY_CODE_COUNT = 10
TOTP_DEVICE_NAME = "authenticator app"
RECOVERY_DEVICE_NAME = "recovery codes"
MANAGE_PERMISSION = "manage:gateway"
# The longest code anyone types: a 6-digit TOTP or a 16-character recovery code, with spaces.
MAX_CODE_LENGTH = 64


def has_confirmed_device(user: User) -> bool:
    """Whether `user` must pass a second factor (a confirmed TOTP device or recovery codes)."""
    return bool(user_has_device(user, confirmed=True))


def enrolment_required(user: User) -> bool:
    """Whether GATEWAY_ADMIN_REQUIRE_MFA sends `user` to enrolment before anything else."""
    return bool(
        settings.GATEWAY_ADMIN_REQUIRE_MFA and user.is_superuser and not has_confirmed_device(user)
    )


def totp_device_pending(*, user: User) -> TOTPDevice:
    """The user's unconfirmed TOTP device, created on first use (same secret until confirmed)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)
    return device


def totp_secret(device: TOTPDevice) -> str:
    """The device's secret in base32, as authenticator apps take it when typed."""
    return b32encode(device.bin_key).decode("ascii").rstrip("=")


def qr_svg(data: str) -> str:
    """`data` as an inline SVG QR code (no image file, nothing the CSP would have to allow)."""
    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathImage, box_size=8, border=2)
    buffer = BytesIO()
    image.save(buffer)
    svg = buffer.getvalue().decode("utf-8")
    return svg[svg.index("<svg") :]  # drop the XML declaration: the SVG sits inside HTML


def recovery_codes_issue(*, user: User) -> list[str]:
    """Replace the user's recovery codes with new ones; the codes, to be shown once."""
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(*, user: User) -> int:
    """How many unused recovery codes the user has."""
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def totp_confirm(*, device: TOTPDevice, code: str) -> list[str] | None:
    """Confirm a pending TOTP device with a code from the app; new recovery codes, or None."""
    with transaction.atomic():
        locked = TOTPDevice.objects.select_for_update().get(pk=device.pk)
        if locked.confirmed or not locked.verify_token(normalize_code(code)):
            return None
        locked.confirmed = True
        locked.save(update_fields=["confirmed"])
        # One authenticator per person: a second enrolment replaces the first.
        TOTPDevice.objects.filter(user=locked.user).exclude(pk=locked.pk).delete()
    logger.info("mfa enrolled: user=%r", device.user.get_username())
    return recovery_codes_issue(user=device.user)


def normalize_code(code: str) -> str:
    """What the user typed, without the spaces and dashes people add to codes."""
    return "".join(code.split()).replace("-", "")[:MAX_CODE_LENGTH]


def code_verify(*, user: User, code: str) -> Device | None:
    """The confirmed device that accepts `code` (TOTP first, then a recovery code), or None.

    TOTP codes cannot be replayed (django-otp keeps the last accepted time step) and a recovery
    code is deleted as it is accepted; the rows are locked so two requests cannot both win.
    """
    token = normalize_code(code)
    if not token:
        return None
    with transaction.atomic():
        for device in devices_for_user(user, confirmed=True, for_verify=True):
            if device.verify_token(token):
                return device
    return None


def code_failure_record(*, request: HttpRequest, user: User) -> bool:
    """Count a wrong code as a failed login (django-axes); whether the account is now locked."""
    credentials = {"username": user.get_username()}
    user_login_failed.send(sender=__name__, credentials=credentials, request=request)
    logger.warning("mfa code refused: user=%r path=%s", user.get_username(), request.path)
    return bool(getattr(request, "axes_locked_out", False))


def code_step_locked(*, request: HttpRequest, user: User) -> bool:
    """Whether django-axes already locks this account from this address."""
    return bool(AxesProxyHandler.is_locked(request, {"username": user.get_username()}))


def devices_reset(*, user: User) -> int:
    """Remove every device of `user` (TOTP and recovery codes); how many were removed."""
    with transaction.atomic():
        totp, _ = TOTPDevice.objects.filter(user=user).delete()
        static = StaticDevice.objects.filter(user=user).count()
        StaticDevice.objects.filter(user=user).delete()
    logger.warning("mfa devices reset: user=%r devices=%d", user.get_username(), totp + static)
    return int(totp + static)


def may_reset_devices(*, actor: User, target: User) -> bool:
    """Whether `actor` may reset `target`'s devices: a change to that account, as CONTRACT
    section 3's table decides it (audit.authority), so a console role comes first."""
    from audit.authority import actor_for_user, may

    return may(actor_for_user(actor), "change", "users", target=target)


def token_second_factor_check(*, request: HttpRequest, user: User, code: str | None) -> None:
    """/auth/token/'s second factor: raise unless `user` may have a token with this `otp`.

    Users without a device are unaffected. With GATEWAY_ADMIN_REQUIRE_MFA a superuser without
    one gets no token at all: a script would otherwise be a way around the console's rule.
    """
    from accounts.errors import (
        MfaEnrolmentRequired,
        OtpInvalid,
        OtpRequired,
        TooManyLoginAttempts,
    )
    from accounts.login_throttle import cooloff_seconds

    if not has_confirmed_device(user):
        if enrolment_required(user):
            raise MfaEnrolmentRequired()
        return
    if not code:
        raise OtpRequired()
    if code_verify(user=user, code=code) is None:
        if code_failure_record(request=request, user=user):
            raise TooManyLoginAttempts(headers={"Retry-After": str(cooloff_seconds())})
        raise OtpInvalid()
