"""`manage.py mfa_reset USERNAME`."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from tests.support.gateway_server import ROOT, gateway_env
from tests.support.mfa import enrol

pytestmark = pytest.mark.django_db


def test_mfa_reset_removes_every_device_of_the_user_only():
    alice = User.objects.create_user(username="alice", password="pw-alice-1234")
    bob = User.objects.create_user(username="bob", password="pw-bob-123456")
    enrol(alice)
    enrol(bob)
    out = io.StringIO()

    call_command("mfa_reset", "alice", stdout=out)

    assert "Removed 2 two-factor device(s) of alice" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=alice).exists()
    assert not StaticDevice.objects.filter(user=alice).exists()
    assert TOTPDevice.objects.filter(user=bob).exists()


def test_mfa_reset_of_a_user_without_devices_says_so():
    User.objects.create_user(username="carol", password="pw-carol-1234")
    out = io.StringIO()
    call_command("mfa_reset", "carol", stdout=out)
    assert "had no two-factor devices" in out.getvalue()


def test_mfa_reset_of_an_unknown_user_names_it():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("mfa_reset", "nobody")


def test_mfa_reset_of_an_unknown_user_exits_1_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "manage.py", "mfa_reset", "nobody"],
        cwd=ROOT,
        env=gateway_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "No user named 'nobody'" in result.stderr
    assert "Traceback" not in result.stderr
