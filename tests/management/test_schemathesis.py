"""Property-based tests of the management API from its own schema (schemathesis, in-process)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.middleware.csrf import _get_new_csrf_string
from hypothesis import HealthCheck, Phase, settings
from rest_framework.test import APIClient
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
)

# 39 operations: their documented examples plus 5 generated cases each, about 215 requests.
EXAMPLES_PER_OPERATION = 5


# The gateway's schema, served by the gateway itself through WSGI (no database needed).
# The coverage phase alone would send every boundary case of every field (thousands); the
# documented examples plus a bounded number of generated cases per operation keep it quick.
schema = schemathesis.openapi.from_wsgi(
    "/api/openapi.json",
    # Django's own WSGI handler: gateway_project.wsgi would start the serving process's threads.
    get_wsgi_application(),
    config=SchemathesisConfig.from_dict(
        {"phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}}}
    ),
)


@pytest.fixture
def in_process_wsgi() -> Iterator[None]:
    """Keep the test's database connection open across WSGI requests, as Django's client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def staff_session(staff_user: Any, in_process_wsgi: None) -> dict[str, Any]:
    """Cookies and headers of a logged-in staff session with a valid CSRF token."""
    client = APIClient()
    client.force_login(staff_user)
    token = _get_new_csrf_string()
    return {
        "cookies": {"sessionid": client.cookies["sessionid"].value, "csrftoken": token},
        "headers": {"X-CSRFToken": token},
    }


@schema.include(path_regex="^/api/gateway/").parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
@pytest.mark.django_db
def test_management_api_follows_its_schema_and_never_answers_500(case, staff_session):
    response = case.call(**staff_session)
    case.validate_response(
        response, excluded_checks=[positive_data_acceptance, negative_data_rejection, ignored_auth]
    )
