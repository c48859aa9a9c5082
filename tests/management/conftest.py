"""Fixtures for the management API and docs tests: staff and non-staff API clients."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient


@pytest.fixture
def staff_user(db: Any) -> Any:
    """An active staff user with the admin role (superuser)."""
    from accounts.models import User

    return User.objects.create_user(
        "ops", "ops@example.com", "a long passphrase 42", is_staff=True, is_superuser=True
    )


@pytest.fixture
def staff(staff_user: Any) -> APIClient:
    """An API client logged in (session) as staff."""
    client = APIClient()
    client.force_login(staff_user)
    return client


@pytest.fixture
def make_user(db: Any) -> Any:
    """Factory: a non-staff user holding the given permissions through one role."""
    from accounts.models import Permission, Role, User

    def factory(username: str, *permissions: str) -> User:
        user = User.objects.create_user(username, password="a long passphrase 42")
        if permissions:
            role = Role.objects.create(name=f"{username}-role")
            role.permissions.set(Permission.objects.get_or_create(name=p)[0] for p in permissions)
            user.roles.add(role)
        return user

    return factory
