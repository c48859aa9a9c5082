"""ip_allow / ip_deny: which client addresses may use a route."""

from __future__ import annotations

import pytest

from gateway_project.errors import IpForbidden
from routing.policies.ip import IpRules


def test_no_lists_compile_to_no_rules() -> None:
    assert IpRules.compile(allow=[], deny=[]) is None


def test_allow_list_admits_only_its_networks() -> None:
    rules = IpRules.compile(allow=["10.0.0.0/8", "2001:db8::/32"])
    assert rules is not None
    assert rules.permits("10.1.2.3")
    assert rules.permits("2001:db8::1")
    assert not rules.permits("192.168.1.1")
    assert not rules.permits("2001:db9::1")


def test_deny_list_refuses_its_networks_only() -> None:
    rules = IpRules.compile(deny=["192.168.0.0/16"])
    assert rules is not None
    assert not rules.permits("192.168.4.4")
    assert rules.permits("10.0.0.1")


def test_deny_wins_over_allow() -> None:
    rules = IpRules.compile(allow=["10.0.0.0/8"], deny=["10.9.0.0/16"])
    assert rules is not None
    assert rules.permits("10.1.0.1")
    assert not rules.permits("10.9.0.1")


def test_ipv4_mapped_ipv6_client_is_judged_as_ipv4() -> None:
    rules = IpRules.compile(deny=["127.0.0.0/8"])
    assert rules is not None
    assert not rules.permits("::ffff:127.0.0.1")


@pytest.mark.parametrize("address", ["", "not-an-ip", "10.0.0.1\x00", "999.1.1.1", "1" * 5000])
def test_unreadable_client_address_is_never_permitted(address: str) -> None:
    rules = IpRules.compile(deny=["192.0.2.0/24"])
    assert rules is not None
    assert not rules.permits(address)


def test_check_raises_403_ip_forbidden() -> None:
    rules = IpRules.compile(allow=["10.0.0.0/8"])
    assert rules is not None
    with pytest.raises(IpForbidden) as caught:
        rules.check("8.8.8.8")
    assert caught.value.status_code == 403
    assert caught.value.default_code == "ip_forbidden"
    rules.check("10.0.0.1")  # permitted: no exception


def test_invalid_network_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        IpRules.compile(allow=["10.0.0.0/33"])
