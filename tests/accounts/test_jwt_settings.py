"""JWT settings from the environment: pinned algorithms, key checks, the derived fallback key."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from accounts.jwt_settings import derived_signing_key, jwt_settings_from_env
from tests.support.identity import rsa_pem_pair

ENV = (
    "JWT_ALGORITHM",
    "JWT_SIGNING_KEY",
    "JWT_PRIVATE_KEY",
    "JWT_PUBLIC_KEY",
    "JWT_SIGNING_KEY_FILE",
    "JWT_PRIVATE_KEY_FILE",
    "JWT_PUBLIC_KEY_FILE",
    "JWT_JWKS_ALGORITHMS",
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_without_a_signing_key_one_is_derived_from_secret_key():
    config = jwt_settings_from_env(secret_key="s3cret")

    assert config.algorithm == "HS256"
    assert config.signing_key_derived
    assert config.signing_key == derived_signing_key("s3cret")
    assert config.signing_key != "s3cret"


def test_signing_key_is_read_from_a_file(clean_env, tmp_path):
    path = tmp_path / "jwt.key"
    path.write_text("k" * 40 + "\n")
    clean_env.setenv("JWT_SIGNING_KEY_FILE", str(path))

    config = jwt_settings_from_env(secret_key="x")

    assert config.signing_key == "k" * 40
    assert not config.signing_key_derived


@pytest.mark.parametrize("algorithm", ["none", "None", "HS1", "RS128"])
def test_unsupported_algorithms_are_refused_at_start_up(clean_env, algorithm):
    clean_env.setenv("JWT_ALGORITHM", algorithm)

    with pytest.raises(ImproperlyConfigured, match="JWT_ALGORITHM"):
        jwt_settings_from_env(secret_key="x")


def test_short_hmac_key_is_refused(clean_env):
    clean_env.setenv("JWT_SIGNING_KEY", "short")

    with pytest.raises(ImproperlyConfigured, match="at least 32 bytes"):
        jwt_settings_from_env(secret_key="x")


def test_rs256_needs_a_key_pair(clean_env):
    clean_env.setenv("JWT_ALGORITHM", "rs256")

    with pytest.raises(ImproperlyConfigured, match="JWT_PUBLIC_KEY"):
        jwt_settings_from_env(secret_key="x")


def test_rs256_public_key_is_derived_from_the_private_key(clean_env):
    private, public = rsa_pem_pair()
    clean_env.setenv("JWT_ALGORITHM", "RS256")
    clean_env.setenv("JWT_PRIVATE_KEY", private)

    config = jwt_settings_from_env(secret_key="x")

    assert config.algorithm == "RS256"
    assert config.public_key is not None
    assert config.public_key.strip() == public.strip()
    assert config.signing_key is None


def test_hmac_secret_with_an_asymmetric_algorithm_is_refused(clean_env):
    clean_env.setenv("JWT_ALGORITHM", "ES256")
    clean_env.setenv("JWT_SIGNING_KEY", "k" * 40)

    with pytest.raises(ImproperlyConfigured, match="JWT_SIGNING_KEY"):
        jwt_settings_from_env(secret_key="x")


def test_jwks_algorithms_must_be_asymmetric(clean_env):
    clean_env.setenv("JWT_JWKS_ALGORITHMS", "RS256,HS256")

    with pytest.raises(ImproperlyConfigured, match="JWT_JWKS_ALGORITHMS"):
        jwt_settings_from_env(secret_key="x")
