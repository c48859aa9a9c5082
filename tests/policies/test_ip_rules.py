"""ip_allow / ip_deny: which client addresses may use a route."""

from __future__ import annotations

import ipaddress

import pytest

from gateway_project.errors import IpForbidden
from routing.compiled_policies import IpRules
from routing.policies import ip


def rules(*networks: str, allow: bool) -> IpRules:
    parsed = tuple(ipaddress.ip_network(n) for n in networks)
    return IpRules(
        allow=allow,
        networks=parsed,
        ipv4=tuple(n for n in parsed if isinstance(n, ipaddress.IPv4Network)),
        ipv6=tuple(n for n in parsed if isinstance(n, ipaddress.IPv6Network)),
    )


def test_allow_list_admits_only_its_networks() -> None:
    allow = rules("10.0.0.0/8", "2001:db8::/32", allow=True)
    assert ip.permits(allow, "10.1.2.3")
    assert ip.permits(allow, "2001:db8::1")
    assert not ip.permits(allow, "192.168.1.1")
    assert not ip.permits(allow, "2001:db9::1")


def test_deny_list_refuses_its_networks_only() -> None:
    deny = rules("192.168.0.0/16", allow=False)
    assert not ip.permits(deny, "192.168.4.4")
    assert ip.permits(deny, "10.0.0.1")
    assert ip.permits(deny, "::1")


def test_ipv4_mapped_ipv6_client_is_judged_as_ipv4() -> None:
    assert not ip.permits(rules("127.0.0.0/8", allow=False), "::ffff:127.0.0.1")
    assert ip.permits(rules("127.0.0.0/8", allow=True), "::ffff:127.0.0.1")


@pytest.mark.parametrize("address", ["", "not-an-ip", "10.0.0.1\x00", "999.1.1.1", "1" * 5000])
def test_unreadable_client_address_is_never_permitted(address: str) -> None:
    assert not ip.permits(rules("0.0.0.0/0", "::/0", allow=True), address)
    assert not ip.permits(rules("192.0.2.0/24", allow=False), address)


def test_check_raises_403_ip_forbidden() -> None:
    allow = rules("10.0.0.0/8", allow=True)
    with pytest.raises(IpForbidden) as caught:
        ip.check(allow, "8.8.8.8")
    assert caught.value.status_code == 403
    assert caught.value.default_code == "ip_forbidden"
    ip.check(allow, "10.0.0.1")  # permitted: no exception


def test_describe_names_the_rule_and_networks() -> None:
    assert ip.describe(rules("10.0.0.0/8", allow=True)) == "allow 10.0.0.0/8"


@pytest.mark.parametrize("allow", [True, False])
def test_networks_written_as_ipv4_mapped_ipv6_judge_ipv4_clients(allow: bool) -> None:
    from routing.compiled_policies import compile_ip_rules
    from routing.configfile.spec import RouteSpec

    given = ("::ffff:10.9.0.0/112",)
    spec = RouteSpec(
        path="/x/**",
        service="s",
        ip_allow=given if allow else (),
        ip_deny=given if not allow else (),
    )
    compiled = compile_ip_rules(spec)
    assert compiled is not None
    # A client at 10.9.0.7 (IPv4, or IPv4-mapped on a dual-stack socket) is inside the network.
    for client in ("10.9.0.7", "::ffff:10.9.0.7"):
        assert ip.permits(compiled, client) is allow
    for client in ("10.8.0.7", "::ffff:10.8.0.7"):
        assert ip.permits(compiled, client) is not allow
