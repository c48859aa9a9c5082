"""Console two-factor authentication: enrolment, the code step, recovery codes, lockout, the
GATEWAY_ADMIN_REQUIRE_MFA gate, /auth/token/'s `otp`, and who sees and resets devices."""

from __future__ import annotations

import json
import re

import pytest
from django.conf import settings
from django.test import override_settings
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from audit.roles import OPERATOR, VIEWER, ensure_console_groups
from tests.support.identity import PASSWORD, problem, role
from tests.support.mfa import enrol, totp_code

pytestmark = pytest.mark.django_db

VERIFY = "/admin/mfa/verify/"


def staff(username: str, *, superuser: bool = False, group: str | None = None) -> User:
    person = User.objects.create_user(
        username=username, password=PASSWORD, is_staff=True, is_superuser=superuser
    )
    if group:
        ensure_console_groups()
        from django.contrib.auth.models import Group

        person.groups.add(Group.objects.get(name=group))
    return person


def password_step(client, username: str, path: str = "/admin/login/?next=/admin/"):
    return client.post(path, {"username": username, "password": PASSWORD, "next": "/admin/"})


def code_step(client, code: str):
    return client.post(VERIFY, {"code": code})


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- enrolment -----------------------------------------------------------------------------


@override_settings(OTP_TOTP_THROTTLE_FACTOR=0)  # a wrong code first, then the right one at once
def test_enrolment_shows_secret_and_qr_confirms_with_a_code_and_shows_recovery_codes_once(client):
    alice = staff("alice")
    client.force_login(alice)

    page = client.get("/admin/mfa/")
    assert page.status_code == 200
    html = page.content.decode()
    device = TOTPDevice.objects.get(user=alice)
    assert not device.confirmed
    found = re.search(r'id="mfa-secret"[^>]*>([A-Z2-7]+)<', html)
    assert found, html
    secret = found.group(1)
    assert len(secret) == 32  # 160-bit key in base32
    svg = html[html.index('<div id="mfa-qr"') :]
    assert "<svg" in svg[:400] and "<img" not in svg[:400]  # inline: the CSP needs nothing new
    assert "script-src 'self' 'nonce-" in page["Content-Security-Policy"]
    assert "no-store" in page["Cache-Control"]
    assert client.get("/admin/mfa/").content.decode().count(secret) == 1  # same secret until done

    wrong = client.post("/admin/mfa/", {"code": "000000" if totp_code(device) != "000000" else "1"})
    assert wrong.status_code == 400 and b"does not match" in wrong.content
    device.refresh_from_db()
    assert not device.confirmed

    done = client.post("/admin/mfa/", {"code": totp_code(device)})
    assert done.status_code == 200
    codes = re.findall(r"<li>([a-z0-9]+)</li>", done.content.decode())
    assert len(codes) == 10
    device.refresh_from_db()
    assert device.confirmed
    assert sorted(codes) == sorted(
        StaticToken.objects.filter(device__user=alice).values_list("token", flat=True)
    )

    status = client.get("/admin/mfa/").content.decode()
    assert "Two-factor authentication is on" in status
    assert secret not in status and not any(code in status for code in codes)


def test_console_user_menu_links_to_two_factor_page(client):
    client.force_login(staff("alice"))
    assert b'href="/admin/mfa/"' in client.get("/admin/").content


def test_new_recovery_codes_replace_the_old_ones(client):
    alice = staff("alice")
    _, old = enrol(alice)
    client.force_login(alice)
    assert code_step(client, old[0]).status_code == 302

    page = client.post("/admin/mfa/", {"action": "recovery-codes"})

    new = re.findall(r"<li>([a-z0-9]+)</li>", page.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    assert StaticToken.objects.filter(device__user=alice, token__in=old).count() == 0


# --- the code step of the login --------------------------------------------------------------


def test_password_alone_does_not_log_in_a_user_with_a_device(client):
    alice = staff("alice")
    device, _ = enrol(alice)

    response = password_step(client, "alice")

    assert response.status_code == 302 and response["Location"] == VERIFY
    assert not logged_in(client)
    assert client.get("/admin/")["Location"].startswith("/admin/login/")
    page = client.get(VERIFY)
    assert page.status_code == 200 and b"alice" in page.content

    done = code_step(client, totp_code(device))
    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert logged_in(client)
    assert client.get("/admin/").status_code == 200


def test_a_totp_code_works_once(client):
    alice = staff("alice")
    device, _ = enrol(alice)
    code = totp_code(device)
    password_step(client, "alice")
    assert code_step(client, code).status_code == 302
    client.logout()

    password_step(client, "alice")
    again = code_step(client, code)

    assert again.status_code == 400 and not logged_in(client)


def test_each_recovery_code_logs_in_once(client):
    alice = staff("alice")
    enrol(alice)
    codes = list(StaticToken.objects.filter(device__user=alice).values_list("token", flat=True))

    password_step(client, "alice")
    first = code_step(client, codes[0])
    assert first.status_code == 302 and logged_in(client)
    assert b"9 left" in client.get("/admin/").content  # the warning says how many remain
    client.logout()

    password_step(client, "alice")
    reused = code_step(client, codes[0])
    assert reused.status_code == 400 and not logged_in(client)
    assert StaticToken.objects.filter(device__user=alice).count() == 9


def test_code_page_without_a_password_step_goes_back_to_login(client):
    response = client.get(VERIFY)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    assert client.post(VERIFY, {"code": "123456"})["Location"].startswith("/admin/login/")


def test_wrong_codes_lock_out_like_wrong_passwords_and_a_new_password_step_does_not_reset(client):
    alice = staff("alice")
    _, codes = enrol(alice)
    limit = settings.AXES_FAILURE_LIMIT
    password_step(client, "alice")
    statuses = [code_step(client, f"99999{n}").status_code for n in range(limit - 1)]
    assert statuses == [400] * (limit - 1)

    # The password again is not a fresh start: it logs nobody in, so axes keeps the count.
    assert password_step(client, "alice")["Location"] == VERIFY
    locked = code_step(client, "999990")

    assert locked.status_code == 429
    assert locked["Content-Type"].startswith("text/html")  # a console page, not a traceback
    assert b"Too many failed login attempts" in locked.content
    assert int(locked["Retry-After"]) > 0
    # Locked: neither the password step nor a right code gets in.
    assert password_step(client, "alice").status_code == 429
    assert code_step(client, codes[0]).status_code in (302, 429)
    assert not logged_in(client)


def test_a_session_that_skipped_the_code_step_reaches_nothing(client):
    alice = staff("alice", superuser=True)
    enrol(alice)
    client.force_login(alice)  # e.g. logged in before enrolling elsewhere: not verified

    page = client.get("/admin/routing/route/")
    api = client.get("/api/gateway/services/")

    assert page.status_code == 302 and page["Location"].startswith(VERIFY + "?next=")
    assert api.status_code == 403 and problem(api)["code"] == "mfa_required"


def test_oauth_login_page_asks_for_the_code_too(client):
    alice = User.objects.create_user(username="alice", password=PASSWORD)
    enrol(alice)

    response = client.post(
        "/o/login/?next=/o/authorize/", {"username": "alice", "password": PASSWORD}
    )

    assert response.status_code == 302 and response["Location"] == VERIFY
    assert not logged_in(client)


def test_users_without_a_device_log_in_with_the_password_as_before(client):
    staff("alice", superuser=True)
    response = password_step(client, "alice")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


# --- GATEWAY_ADMIN_REQUIRE_MFA ---------------------------------------------------------------


@override_settings(GATEWAY_ADMIN_REQUIRE_MFA=True)
def test_required_mfa_sends_a_superuser_without_device_to_enrolment_and_nowhere_else(client):
    root = staff("root", superuser=True)
    assert password_step(client, "root")["Location"] == "/admin/"

    for path in ("/admin/", "/admin/routing/route/", "/admin/mfa/devices/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"].startswith("/admin/mfa/?next="), path
    assert client.post("/admin/routing/service/add/", {"name": "x"})["Location"] == "/admin/mfa/"
    api = client.get("/api/gateway/services/")
    assert api.status_code == 403 and problem(api)["code"] == "mfa_enrolment_required"

    setup = client.get("/admin/mfa/")
    assert setup.status_code == 200 and b"must set up two-factor" in setup.content
    device = TOTPDevice.objects.get(user=root)
    assert client.post("/admin/mfa/", {"code": totp_code(device)}).status_code == 200
    assert client.get("/admin/").status_code == 200
    assert client.get("/api/gateway/services/").status_code == 200


@override_settings(GATEWAY_ADMIN_REQUIRE_MFA=True)
def test_required_mfa_applies_to_superusers_only(client):
    client.force_login(staff("olga", group=OPERATOR))
    assert client.get("/admin/").status_code == 200


def test_superusers_without_device_are_not_gated_by_default(client):
    assert settings.GATEWAY_ADMIN_REQUIRE_MFA is False
    client.force_login(staff("root", superuser=True))
    assert client.get("/admin/").status_code == 200


# --- /auth/token/ ----------------------------------------------------------------------------


def token(client, username: str, **extra: str):
    body = {"username": username, "password": PASSWORD, **extra}
    return client.post("/auth/token/", body, content_type="application/json")


def test_token_for_a_user_with_a_device_needs_the_otp_field(client):
    alice = User.objects.create_user(username="alice", password=PASSWORD)
    device, _ = enrol(alice)

    missing = token(client, "alice")
    assert missing.status_code == 401
    assert problem(missing)["code"] == "otp_required" and "`otp`" in problem(missing)["detail"]
    assert missing["WWW-Authenticate"].startswith("Bearer")

    wrong = token(client, "alice", otp="000000" if totp_code(device) != "000000" else "111111")
    assert wrong.status_code == 401 and problem(wrong)["code"] == "otp_invalid"


def test_token_with_a_right_otp_is_issued_and_the_code_cannot_be_replayed(client):
    alice = User.objects.create_user(username="alice", password=PASSWORD)
    device, codes = enrol(alice)
    code = totp_code(device)

    first = token(client, "alice", otp=code)
    recovery = token(client, "alice", otp=codes[0])
    # Failures last: django-otp throttles a device for a moment after each wrong code.
    replay = token(client, "alice", otp=code)
    recovery_again = token(client, "alice", otp=codes[0])

    assert first.status_code == 200 and set(json.loads(first.content)) == {"access", "refresh"}
    assert replay.status_code == 401
    assert recovery.status_code == 200
    assert recovery_again.status_code == 401


def test_wrong_otps_on_the_token_endpoint_lock_out(client):
    alice = User.objects.create_user(username="alice", password=PASSWORD)
    enrol(alice)
    limit = settings.AXES_FAILURE_LIMIT
    statuses = [token(client, "alice", otp=f"88888{n}").status_code for n in range(limit)]

    assert statuses[: limit - 1] == [401] * (limit - 1)
    assert statuses[-1] == 429
    assert problem(token(client, "alice"))["code"] == "too_many_login_attempts"


def test_token_for_a_user_without_a_device_is_unchanged(client):
    User.objects.create_user(username="bob", password=PASSWORD)
    assert token(client, "bob").status_code == 200
    assert token(client, "bob", otp="").status_code == 200


@override_settings(GATEWAY_ADMIN_REQUIRE_MFA=True)
def test_required_mfa_refuses_tokens_to_superusers_without_device(client):
    staff("root", superuser=True)
    User.objects.create_user(username="bob", password=PASSWORD)

    refused = token(client, "root")

    assert refused.status_code == 403 and problem(refused)["code"] == "mfa_enrolment_required"
    assert token(client, "bob").status_code == 200


# --- who sees and resets devices -------------------------------------------------------------


def verified(client, person: User) -> None:
    """Log `person` in through both steps (enrolling them first when needed)."""
    device = TOTPDevice.objects.filter(user=person, confirmed=True).first()
    if device is None:
        device, _ = enrol(person)
    password_step(client, person.username)
    assert code_step(client, totp_code(device)).status_code == 302


def test_devices_page_lists_devices_without_their_secrets(client):
    root = staff("root", superuser=True)
    alice = staff("alice")
    device, codes = enrol(alice)
    verified(client, root)

    page = client.get("/admin/mfa/devices/")

    html = page.content.decode()
    assert page.status_code == 200 and "alice" in html and "root" in html
    assert device.key not in html and not any(code in html for code in codes)
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 404  # django-otp's pages
    assert client.get("/admin/otp_static/staticdevice/").status_code == 404  # show secrets


@pytest.mark.parametrize("group", [OPERATOR, VIEWER])
def test_operators_and_viewers_see_devices_but_reset_nobodys(client, group):
    staff("root", superuser=True)
    alice = staff("alice")
    enrol(alice)
    enrol(User.objects.get(username="root"))
    plain = User.objects.create_user(username="paul", password=PASSWORD)
    enrol(plain)
    verified(client, staff("olga", group=group))

    page = client.get("/admin/mfa/devices/")
    assert page.status_code == 200 and b"Reset devices" not in page.content
    for target in ("root", "alice", "paul"):
        target_id = User.objects.get(username=target).pk
        response = client.post(f"/admin/mfa/devices/{target_id}/reset/")
        assert response.status_code == 403, target
        assert response["Content-Type"].startswith("text/html")
        assert b"Only superusers" in response.content
    assert TOTPDevice.objects.filter(confirmed=True).count() == 4


def test_a_staff_manage_gateway_holder_without_the_right_console_role_resets_nobody(client):
    # The console role decides for staff before any manage:gateway their gateway roles hold
    # (audit.authority): a reset is a change to the account, which needs the table's right.
    root = staff("root", superuser=True)
    enrol(root)
    colleague = staff("sam")
    enrol(colleague)
    plain = User.objects.create_user(username="paul", password=PASSWORD)
    enrol(plain)
    manager = staff("mia")
    manager.roles.add(role("gateway-admins", "manage:gateway"))
    verified(client, manager)

    for person in (root, colleague, plain):
        assert client.post(f"/admin/mfa/devices/{person.pk}/reset/").status_code == 403
    assert TOTPDevice.objects.filter(user__in=[root, colleague, plain]).count() == 3


def test_superuser_resets_anyones_devices_and_unknown_users_get_a_console_404(client):
    other_root = staff("other", superuser=True)
    enrol(other_root)
    verified(client, staff("root", superuser=True))

    done = client.post(f"/admin/mfa/devices/{other_root.pk}/reset/")
    missing = client.post("/admin/mfa/devices/999999/reset/")

    assert done.status_code == 302
    assert not TOTPDevice.objects.filter(user=other_root).exists()
    assert not StaticDevice.objects.filter(user=other_root).exists()
    assert missing.status_code == 404 and missing["Content-Type"].startswith("text/html")
    assert client.get(f"/admin/mfa/devices/{other_root.pk}/reset/").status_code == 405


def test_hostile_codes_get_a_form_error_or_a_400_problem_never_a_500(client):
    alice = staff("alice")
    enrol(alice)
    password_step(client, "alice")

    for code in ("12\x0034", "x" * 5000, "", "' OR 1=1 --"):
        page = code_step(client, code)
        assert page.status_code == 400, code
        assert page["Content-Type"].startswith("text/html")
    client.logout()
    nul = token(client, "alice", otp="12\x0034")
    assert nul.status_code == 400 and problem(nul)["errors"][0]["field"] == "otp"
