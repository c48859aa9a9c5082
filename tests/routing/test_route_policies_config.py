"""Route policies in the config file: each key checked with its place, stored, round-tripped, compiled."""

from __future__ import annotations

import ipaddress
import textwrap

import pytest

from routing.configfile.service import config_export, config_import
from routing.configfile.spec import MAX_POLICY_ENTRIES
from routing.configfile.validate import ConfigInvalid, parse_config
from routing.models import Route
from routing.table import compile_table

pytestmark = pytest.mark.django_db

SERVICE = """\
services:
  - name: api
    url: http://127.0.0.1:9
    openapi: /openapi.json
routes:
  - path: /v1/**
    service: api
"""

ALL_POLICIES = SERVICE + textwrap.indent(
    """\
methods: [GET, POST]
hide_credentials: true
ip_allow: ["10.0.0.0/8", "2001:db8::/32", "192.168.1.7"]
cors:
  origins: ["https://app.example.com", "http://localhost:3000"]
  methods: [GET, POST]
  headers: [Authorization, Content-Type]
  expose_headers: [X-Request-ID]
  credentials: true
  max_age: 10m
request_headers: {set: {X-Api-Version: "1"}, remove: [X-Debug]}
response_headers: {set: {Cache-Control: no-store}, remove: [X-Powered-By]}
validate: true
cache: {ttl: 30s}
websocket: true
""",
    "    ",
)


def _route_with(policy: str) -> str:
    """The base file with `policy` (YAML lines) added to its route, which starts at line 6."""
    return SERVICE + textwrap.indent(textwrap.dedent(policy), "    ")


def _errors(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigInvalid) as caught:
        parse_config(text)
    return [(e.line, e.location, e.message) for e in caught.value.errors]


def _import_errors(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(ConfigInvalid) as caught:
        config_import(text=text)
    return [(e.line, e.location, e.message) for e in caught.value.errors]


def test_every_policy_key_is_imported_onto_the_route():
    assert config_import(text=ALL_POLICIES).applied
    route = Route.objects.get()
    assert route.hide_credentials and route.validate_requests and route.websocket
    assert route.ip_allow == ["10.0.0.0/8", "192.168.1.7/32", "2001:db8::/32"]
    assert route.ip_deny == []
    assert route.cors is not None and route.response_headers is not None
    assert route.cors["origins"] == ["http://localhost:3000", "https://app.example.com"]
    assert route.cors["max_age_ms"] == 600_000 and route.cors["credentials"] is True
    assert route.request_headers == {"set": [["X-Api-Version", "1"]], "remove": ["X-Debug"]}
    assert route.response_headers["set"] == [["Cache-Control", "no-store"]]
    assert route.cache_ttl_ms == 30_000


def test_export_then_import_of_every_policy_is_a_no_op():
    config_import(text=ALL_POLICIES)
    exported = config_export()
    for key in ("hide_credentials", "ip_allow", "cors", "request_headers", "validate", "cache"):
        assert f"{key}:" in exported
    result = config_import(text=exported)
    assert result.changes == [] and not result.applied
    assert config_export() == exported


def test_reimporting_the_policies_file_is_a_no_op_and_a_change_is_one_diff_line():
    config_import(text=ALL_POLICIES)
    assert config_import(text=ALL_POLICIES).changes == []
    changed = ALL_POLICIES.replace("ttl: 30s", "ttl: 1m")
    (line,) = config_import(text=changed, dry_run=True).changes
    assert line == "~ route GET,POST /v1/**: cache: {ttl: 30s} -> {ttl: 1m}"


def test_a_changed_or_dropped_policy_reads_as_the_config_file_spells_it():
    config_import(text=ALL_POLICIES)
    changed = ALL_POLICIES.replace('X-Api-Version: "1"', 'X-Api-Version: "2"').replace(
        "    response_headers: {set: {Cache-Control: no-store}, remove: [X-Powered-By]}\n", ""
    )
    (line,) = config_import(text=changed, dry_run=True).changes
    assert line == (
        "~ route GET,POST /v1/**: request_headers: {set: {X-Api-Version: '1'}, remove: [X-Debug]}"
        " -> {set: {X-Api-Version: '2'}, remove: [X-Debug]}, response_headers:"
        " {set: {Cache-Control: no-store}, remove: [X-Powered-By]} -> (default)"
    )


def test_the_compiled_route_holds_the_precomputed_policies():
    config_import(text=ALL_POLICIES)
    (route,) = compile_table(1).routes
    assert route.hide_credentials and route.validate and route.websocket
    assert route.ip_rules is not None and route.ip_rules.allow
    assert ipaddress.ip_network("10.0.0.0/8") in route.ip_rules.ipv4
    assert ipaddress.ip_network("2001:db8::/32") in route.ip_rules.ipv6
    cors = route.cors
    assert cors is not None and not cors.any_origin
    assert cors.origins == frozenset({"https://app.example.com", "http://localhost:3000"})
    assert cors.headers == frozenset({"authorization", "content-type"})
    assert (cors.allow_methods, cors.allow_headers) == ("GET, POST", "Authorization, Content-Type")
    assert (cors.expose_headers, cors.max_age, cors.credentials) == ("X-Request-ID", "600", True)
    assert route.request_headers is not None
    assert route.request_headers.set == (("X-Api-Version", "1"),)
    assert route.request_headers.remove == frozenset({"x-debug"})
    assert route.response_headers is not None
    assert route.response_headers.set_names == frozenset({"cache-control"})
    assert route.cache is not None and route.cache.ttl_seconds == 30.0


def test_a_route_without_policies_compiles_none_of_them():
    config_import(text=SERVICE)
    (route,) = compile_table(1).routes
    assert (route.ip_rules, route.cors, route.cache) == (None, None, None)
    assert (route.request_headers, route.response_headers) == (None, None)
    assert not (route.hide_credentials or route.validate or route.websocket)


def test_cors_for_any_origin_without_credentials_compiles_to_the_wildcard():
    config_import(text=_route_with('cors: {origins: ["*"]}\n'))
    (route,) = compile_table(1).routes
    assert route.cors is not None and route.cors.any_origin and route.cors.origins == frozenset()
    assert route.cors.max_age == "" and route.cors.allow_methods.startswith("DELETE, GET")


@pytest.mark.parametrize(
    ("policy", "line", "location", "message"),
    [
        ("hide_credentials: yes-please\n", 8, "routes[0].hide_credentials", "true or false"),
        ('ip_allow: ["10.0.0.0/33"]\n', 8, "routes[0].ip_allow[0]", "'10.0.0.0/33' is not an IP"),
        ('ip_allow: ["10.0.0.1/8"]\n', 8, "routes[0].ip_allow[0]", "did you mean 10.0.0.0/8"),
        ('ip_deny: ["2001:db8::/129"]\n', 8, "routes[0].ip_deny[0]", "not an IP address"),
        ('ip_deny: ["fe80::1%eth0"]\n', 8, "routes[0].ip_deny[0]", "not an IP address"),
        ("ip_allow: []\n", 8, "routes[0].ip_allow", "is empty"),
        ("ip_allow: 10.0.0.0/8\n", 8, "routes[0].ip_allow", "must be a list"),
        (
            'ip_allow: ["10.0.0.0/8"]\nip_deny: ["10.1.0.0/16"]\n',
            9,
            "routes[0].ip_deny",
            "not both",
        ),
        ("cors: {methods: [GET]}\n", 8, "routes[0].cors", "origins is required"),
        (
            'cors: {origins: ["*"], credentials: true}\n',
            8,
            "routes[0].cors.credentials",
            'cannot be true with origins ["*"]',
        ),
        (
            'cors:\n  origins: ["https://app.example.com/"]\n',
            9,
            "routes[0].cors.origins[0]",
            "without a path or a trailing '/'",
        ),
        ('cors: {origins: ["app.example.com"]}\n', 8, "routes[0].cors.origins[0]", "scheme://"),
        ('cors: {origins: ["*", "https://a.example"]}\n', 8, "routes[0].cors.origins", "alone"),
        (
            'cors: {origins: ["https://a.example:99999"]}\n',
            8,
            "routes[0].cors.origins[0]",
            "not an origin",
        ),
        ('cors: {origins: ["*"], methods: [FETCH]}\n', 8, "routes[0].cors.methods[0]", "FETCH"),
        ('cors: {origins: ["*"], max_age: 2d}\n', 8, "routes[0].cors.max_age", "not a duration"),
        ('cors: {origins: ["*"], max_age: 25h}\n', 8, "routes[0].cors.max_age", "at most 24h"),
        ('cors: {origins: ["*"], colour: red}\n', 8, "routes[0].cors.colour", "unknown key"),
        (
            'cors: {origins: ["*"], headers: ["Bad Header"]}\n',
            8,
            "routes[0].cors.headers[0]",
            "is not a header name",
        ),
        (
            "request_headers:\n  set: {Host: evil.example}\n",
            9,
            "routes[0].request_headers.set.Host",
            "managed by the gateway",
        ),
        (
            "request_headers:\n  remove: [X-Forwarded-For]\n",
            9,
            "routes[0].request_headers.remove[0]",
            "managed by the gateway",
        ),
        (
            "response_headers:\n  set: {Transfer-Encoding: chunked}\n",
            9,
            "routes[0].response_headers.set.Transfer-Encoding",
            "managed by the gateway",
        ),
        (
            "request_headers:\n  set: {X-Consumer-Id: admin}\n",
            9,
            "routes[0].request_headers.set.X-Consumer-Id",
            "managed by the gateway",
        ),
        (
            "request_headers:\n  set: {Content-Length: '0'}\n",
            9,
            "routes[0].request_headers.set.Content-Length",
            "managed by the gateway",
        ),
        (
            'request_headers:\n  set: {"X Bad": "1"}\n',
            9,
            "routes[0].request_headers.set",
            "'X Bad' is not a header name",
        ),
        (
            'request_headers:\n  set: {X-Evil: "a\\r\\nSet-Cookie: x=1"}\n',
            9,
            "routes[0].request_headers.set.X-Evil",
            "CR, LF, NUL",
        ),
        (
            "request_headers:\n  set: {X-On: true}\n",
            9,
            "routes[0].request_headers.set.X-On",
            "must be text",
        ),
        (
            "request_headers:\n  set: {X-A: '1'}\n  remove: [x-a]\n",
            10,
            "routes[0].request_headers.remove[0]",
            "both set and removed",
        ),
        ("request_headers: {}\n", 8, "routes[0].request_headers", "give set: and/or remove:"),
        ("validate: 1\n", 8, "routes[0].validate", "true or false"),
        ("cache: {ttl: 500ms}\n", 8, "routes[0].cache.ttl", "from 1s to 24h"),
        ("cache: {ttl: 2h, size: 5}\n", 8, "routes[0].cache.size", "unknown key"),
        ("cache: {}\n", 8, "routes[0].cache", "ttl is required"),
        ("websocket: maybe\n", 8, "routes[0].websocket", "true or false"),
    ],
)
def test_each_bad_policy_is_an_error_at_its_key_and_line(policy, line, location, message):
    errors = _errors(_route_with(policy))
    assert any(
        (err_line, err_location) == (line, location) and message in err_message
        for err_line, err_location, err_message in errors
    ), errors


def test_a_nul_in_a_header_value_is_refused_with_its_place():
    # YAML itself refuses a raw NUL; the escape `\0` builds one inside a valid document.
    errors = _errors(_route_with('request_headers:\n  set: {X-A: "a\\0b"}\n'))
    assert errors == [
        (
            9,
            "routes[0].request_headers.set.X-A",
            "a header value must not contain CR, LF, NUL or other control characters.",
        )
    ]


def test_ten_thousand_origins_are_refused_in_one_error():
    origins = ", ".join(f'"https://a{i}.example"' for i in range(10_000))
    errors = _errors(_route_with(f"cors: {{origins: [{origins}]}}\n"))
    assert errors == [
        (
            8,
            "routes[0].cors.origins",
            f"lists 10000 origins; at most {MAX_POLICY_ENTRIES} are allowed.",
        )
    ]


def test_a_huge_header_map_is_refused_in_one_error():
    headers = ", ".join(f'X-H{i}: "v"' for i in range(5_000))
    errors = _errors(_route_with(f"response_headers: {{set: {{{headers}}}}}\n"))
    assert errors == [
        (
            8,
            "routes[0].response_headers.set",
            f"sets 5000 headers; at most {MAX_POLICY_ENTRIES} are allowed.",
        )
    ]


def test_a_huge_header_value_and_deny_list_are_refused():
    value = "v" * 5000
    errors = _errors(_route_with(f'request_headers: {{set: {{X-A: "{value}"}}}}\n'))
    assert [(e[1], e[2]) for e in errors] == [
        ("routes[0].request_headers.set.X-A", "a header value has at most 4096 characters.")
    ]
    networks = ", ".join(f'"10.0.{i // 256}.{i % 256}"' for i in range(MAX_POLICY_ENTRIES + 1))
    assert "at most 100" in _errors(_route_with(f"ip_deny: [{networks}]\n"))[0][2]


def test_validate_needs_the_services_openapi_document_with_its_line():
    text = _route_with("validate: true\n").replace("    openapi: /openapi.json\n", "")
    assert _import_errors(text) == [
        (
            7,
            "routes[0].validate",
            "needs the service's OpenAPI document: give service 'api' an openapi: path "
            "(e.g. /openapi.json), or drop validate.",
        )
    ]
    assert Route.objects.count() == 0


def test_policy_errors_join_the_rest_of_the_report_in_line_order():
    text = _route_with(
        """\
        timeout: soon
        cors: {origins: ["*"], credentials: true}
        ip_allow: ["300.1.1.1"]
        """
    )
    assert [(line, location) for line, location, _ in _import_errors(text)] == [
        (8, "routes[0].timeout"),
        (9, "routes[0].cors.credentials"),
        (10, "routes[0].ip_allow[0]"),
    ]


def test_an_entry_with_an_error_still_counts_as_defined_for_references():
    text = (
        "services:\n  - name: api\n    url: http://127.0.0.1:9\n    colour: blue\n"
        "routes:\n  - path: /v1/**\n    service: api\n"
        "roles:\n  - name: dev\n    permissions: [NOT VALID]\n"
        "quotas:\n  - role: dev\n    requests_per_day: 5\n"
    )
    assert [location for _, location, _ in _import_errors(text)] == [
        "services[0].colour",
        "roles[0].permissions",
    ]


def test_a_header_name_with_a_line_break_never_enters_the_reported_location():
    errors = _errors(_route_with('request_headers:\n  set: {"X-A\\nInjected: 1": "v"}\n'))
    assert [(line, location) for line, location, _ in errors] == [
        (9, "routes[0].request_headers.set")
    ]
    assert "\\n" in errors[0][2] and "\n" not in errors[0][2]


def test_a_route_whose_stored_policy_is_malformed_is_skipped_not_fatal():
    config_import(text=SERVICE + "  - path: /v2/**\n    service: api\n")
    Route.objects.filter(path="/v2/**").update(cors={"no-origins": True})
    (route,) = compile_table(1).routes
    assert route.pattern.pattern == "/v1/**"
