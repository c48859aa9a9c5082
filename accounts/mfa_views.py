"""The console's two-factor pages: the code step of the login, enrolment, and the devices list.

The password step (the console's and /o/login/'s login forms) does not log a person with a
device in: it parks their id in the session, and only a right code logs them in. So a password
alone never makes a session, and django-axes' reset-on-login cannot wipe the count of wrong
codes (a correct password would otherwise buy a fresh set of guesses).
"""

from __future__ import annotations

import time
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, login
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import mfa
from accounts.login_throttle import lockout_response
from accounts.models import User

# How long a password-checked login waits for its code.
PENDING_SECONDS = 300
_PENDING = "mfa_pending"


class CodeForm(forms.Form):
    """One code: the authenticator app's, or a recovery code."""

    code = forms.CharField(
        label="Code",
        max_length=mfa.MAX_CODE_LENGTH,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autofocus": True, "inputmode": "text"}
        ),
    )


def _safe_next(request: HttpRequest, candidate: str | None) -> str:
    """`candidate` when it stays on this site, else the console's front page."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("admin:index")


def pending_begin(request: HttpRequest, *, user: User, backend: str, next_url: str) -> None:
    """Park a password-checked user in a fresh session until they give a code."""
    request.session.cycle_key()
    request.session[_PENDING] = {
        "user": user.pk,
        "backend": backend,
        # A password change between the two steps cancels the login, as it ends sessions.
        "hash": user.get_session_auth_hash(),
        "at": time.time(),
        "next": next_url,
    }


def _pending(request: HttpRequest) -> tuple[User, dict[str, Any]] | None:
    """The parked user and their login data, if still valid."""
    data = request.session.get(_PENDING)
    if not isinstance(data, dict) or time.time() - float(data.get("at", 0)) > PENDING_SECONDS:
        return None
    user_id = data.get("user")
    if not isinstance(user_id, int):
        return None
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None or user.get_session_auth_hash() != data.get("hash"):
        return None
    return user, data


class TwoStepLoginMixin:
    """For a LoginView: a user with a device goes to the code step instead of being logged in."""

    request: HttpRequest

    def form_valid(self, form: Any) -> HttpResponse:
        """Log in users without a device; send the others to the code page."""
        user = form.get_user()
        if not mfa.has_confirmed_device(user):
            return super().form_valid(form)  # type: ignore[misc]
        next_url = _safe_next(self.request, self.get_success_url())  # type: ignore[attr-defined]
        pending_begin(self.request, user=user, backend=user.backend, next_url=next_url)
        return HttpResponseRedirect(reverse("console-mfa-verify"))


class ConsoleLoginView(TwoStepLoginMixin, LoginView):
    """The console's login form (Django admin's), with the code step for users with a device."""

    authentication_form = AdminAuthenticationForm
    template_name = "admin/login.html"


def console_login(request: HttpRequest) -> HttpResponseBase:
    """/admin/login/: as Django admin's own login view, plus the code step."""
    if request.method == "GET" and admin.site.has_permission(request):
        return redirect(_safe_next(request, request.GET.get(REDIRECT_FIELD_NAME)))
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Log in",
        "subtitle": None,
        "app_path": request.get_full_path(),
        "username": request.user.get_username(),
    }
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = reverse("admin:index")
    view = ConsoleLoginView.as_view(extra_context=context)
    return view(request)


def _page(request: HttpRequest, template: str, status: int = 200, **context: Any) -> HttpResponse:
    """A console page with the admin's usual context."""
    response = render(
        request, template, {**admin.site.each_context(request), **context}, status=status
    )
    response["Cache-Control"] = "no-store"
    return response


def console_error(request: HttpRequest, *, status: int, title: str, message: str) -> HttpResponse:
    """A console error as a console page (never a traceback, never problem+json)."""
    return _page(request, "admin/mfa/error.html", status=status, title=title, message=message)


@never_cache
@sensitive_post_parameters("code")
@csrf_protect
def verify(request: HttpRequest) -> HttpResponse:
    """The code step: a TOTP or recovery code finishes the login (wrong ones count for axes)."""
    parked = _pending(request)
    if parked is not None:
        user, data = parked
    elif request.user.is_authenticated and not request.user.is_verified():  # type: ignore[attr-defined]
        # Logged in some other way (e.g. before enrolling on another tab): verify in place.
        user, data = request.user, {}
        if not mfa.has_confirmed_device(user):
            return redirect(reverse("admin:index"))
    else:
        request.session.pop(_PENDING, None)
        return redirect(reverse("admin:login"))

    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if mfa.code_step_locked(request=request, user=user):
            request.session.pop(_PENDING, None)
            return lockout_response(request, credentials={"username": user.get_username()})
        device = mfa.code_verify(user=user, code=form.cleaned_data["code"])
        if device is None:
            if mfa.code_failure_record(request=request, user=user):
                request.session.pop(_PENDING, None)
                return lockout_response(request, credentials={"username": user.get_username()})
            form.add_error("code", "That code is not right (or was already used). Try again.")
        else:
            next_url = _safe_next(request, data.get("next") or request.GET.get("next"))
            if data:
                request.session.pop(_PENDING, None)
                login(request, user, backend=data["backend"])
            otp_login(request, device)
            if isinstance(device, StaticDevice):
                left = mfa.recovery_codes_left(user=user)
                messages.warning(
                    request,
                    f"You logged in with a recovery code; {left} left. Each works once: make "
                    "new ones on the Two-factor authentication page.",
                )
            return redirect(next_url)
    return _page(
        request,
        "admin/mfa/verify.html",
        status=400 if form.errors else 200,
        title="Two-factor authentication",
        form=form,
        pending_username=user.get_username(),
    )


def _setup(request: HttpRequest) -> HttpResponse:
    """Enrolment (secret, QR, confirm with a code), or the status page once enrolled."""
    user: User = request.user  # type: ignore[assignment]
    if mfa.has_confirmed_device(user):
        if request.method == "POST" and request.POST.get("action") == "recovery-codes":
            new_codes = mfa.recovery_codes_issue(user=user)
            return _page(
                request, "admin/mfa/recovery_codes.html", title="Recovery codes", codes=new_codes
            )
        totp = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        return _page(
            request,
            "admin/mfa/status.html",
            title="Two-factor authentication",
            device=totp,
            codes_left=mfa.recovery_codes_left(user=user),
        )
    device = mfa.totp_device_pending(user=user)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        codes = mfa.totp_confirm(device=device, code=form.cleaned_data["code"])
        if codes is not None:
            otp_login(request, TOTPDevice.objects.get(pk=device.pk))
            return _page(
                request, "admin/mfa/recovery_codes.html", title="Recovery codes", codes=codes
            )
        form.add_error("code", "That code does not match: check the app's clock and try the next.")
    uri = device.config_url  # otpauth://totp/..., issuer OTP_TOTP_ISSUER
    return _page(
        request,
        "admin/mfa/setup.html",
        status=400 if form.errors else 200,
        title="Set up two-factor authentication",
        form=form,
        secret=mfa.totp_secret(device),
        qr_svg=mfa.qr_svg(uri),
        required=mfa.enrolment_required(user),
    )


def _devices(request: HttpRequest) -> HttpResponse:
    """Who has two-factor authentication (never their secrets), with a reset where allowed."""
    actor: User = request.user  # type: ignore[assignment]
    if not (actor.is_superuser or actor.has_perm("accounts.view_user")):
        return console_error(
            request,
            status=403,
            title="Not allowed",
            message="Seeing people's two-factor devices needs the right to view users.",
        )
    rows = []
    users = User.objects.filter(totpdevice__confirmed=True).distinct().order_by("username")
    for person in users:
        totp = TOTPDevice.objects.filter(user=person, confirmed=True).first()
        rows.append(
            {
                "user": person,
                "device": totp,
                "codes_left": mfa.recovery_codes_left(user=person),
                "may_reset": mfa.may_reset_devices(actor=actor, target=person),
            }
        )
    return _page(request, "admin/mfa/devices.html", title="Two-factor devices", rows=rows)


@require_POST
def _reset(request: HttpRequest, user_id: int) -> HttpResponse:
    """Remove a person's devices (they log in with the password alone until they enrol again)."""
    actor: User = request.user  # type: ignore[assignment]
    target = User.objects.filter(pk=user_id).first()
    if target is None:
        return console_error(
            request, status=404, title="No such user", message="That user does not exist."
        )
    if not mfa.may_reset_devices(actor=actor, target=target):
        return console_error(
            request,
            status=403,
            title="Not allowed",
            message="Only superusers reset the devices of superusers and staff; resetting "
            "anyone else's needs the manage:gateway permission.",
        )
    removed = mfa.devices_reset(user=target)
    messages.success(request, f"Removed {removed} two-factor device(s) of {target.get_username()}.")
    return redirect(reverse("console-mfa-devices"))


setup = admin.site.admin_view(_setup)
devices = admin.site.admin_view(_devices)
reset = admin.site.admin_view(_reset)
