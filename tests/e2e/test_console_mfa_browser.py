"""Two-factor authentication in a real headless Chromium against gunicorn: a superuser is sent
to enrolment (GATEWAY_ADMIN_REQUIRE_MFA=true), scans nothing but reads the key off the page,
confirms with a code computed from it, gets recovery codes, logs out, and logs in with a code.

Writes no files. Skipped (with the reason) only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import time
from base64 import b32decode
from collections.abc import Iterator

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.e2e.test_console_browser import (  # noqa: F401
    CHROMIUM,
    _user,
    browser,
    chromium,
    collected_static,
)
from tests.support.gateway_server import GatewayServer

PASSWORD = "console-mfa-pw-1"  # a throw-away user of the test database

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="no Chromium at /usr/bin/chromium: install it with "
        "`apt-get install -y chromium` to run the console browser tests",
    ),
]


@pytest.fixture
def mfa_gateway(collected_static: None) -> Iterator[GatewayServer]:  # noqa: F811
    """gunicorn with GATEWAY_ADMIN_REQUIRE_MFA on, sharing the test database."""
    with GatewayServer(GATEWAY_ADMIN_REQUIRE_MFA="true") as server:
        yield server


def code_from_key(base32_key: str, *, at: float | None = None) -> str:
    """What an authenticator app shows for the key on the page, now or at time `at`."""
    key = b32decode(base32_key + "=" * (-len(base32_key) % 8))
    totp = TOTP(key, step=30, t0=0, digits=6)
    totp.time = time.time() if at is None else at
    return f"{totp.token():06d}"


def test_superuser_enrols_in_the_browser_and_logs_in_with_a_computed_code(
    browser,  # noqa: F811
    mfa_gateway,
):
    _user("mara", PASSWORD, superuser=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(15_000)
    csp_violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            csp_violations.append(message.text)
            if "Content Security Policy" in message.text
            else None
        ),
    )
    base = mfa_gateway.url

    def password_step() -> None:
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", "mara")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        page.wait_for_load_state()

    # The password alone leads only to enrolment (GATEWAY_ADMIN_REQUIRE_MFA=true).
    password_step()
    page.wait_for_selector("#mfa-secret")
    assert "/admin/mfa/" in page.url
    page.goto(f"{base}/admin/routing/route/")
    assert "/admin/mfa/" in page.url
    qr = page.locator("#mfa-qr svg").bounding_box()
    assert qr is not None and qr["width"] > 100 and qr["height"] > 100  # the QR is drawn
    secret = page.locator("#mfa-secret").inner_text().strip()

    page.fill("#id_code", code_from_key(secret))
    page.click("#mfa-setup-form input[type=submit]")
    page.wait_for_selector("#recovery-codes")
    assert page.locator("#recovery-codes li").count() == 10
    assert TOTPDevice.objects.get(user__username="mara").confirmed

    # Log out; the password now leads to the code step, and a computed code logs in.
    page.click("#logout-form button")
    page.wait_for_load_state()
    password_step()
    page.wait_for_selector("#mfa-verify-form")
    assert "/admin/mfa/verify/" in page.url
    page.goto(f"{base}/admin/")
    assert "/admin/login/" in page.url  # not logged in before the code
    password_step()
    # The code of the period after the one the enrolment used: never a replay, and within the
    # device's window of one period either side of now. Counted from the period the device
    # accepted, not from the clock: an enrolment whose code crossed a period boundary on its
    # way leaves the device a drift of -1, and the clock's next period then falls outside it.
    accepted = TOTPDevice.objects.get(user__username="mara").last_t
    page.fill("#id_code", code_from_key(secret, at=(accepted + 1) * 30 + 1))
    page.click("#mfa-verify-form input[type=submit]")
    page.wait_for_selector("#gateway-tools")
    assert page.url.rstrip("/").endswith("/admin")
    assert page.locator("#mfa-link").count() == 1
    page.goto(f"{base}/admin/routing/route/")
    assert "/admin/routing/route/" in page.url
    assert not csp_violations, csp_violations
