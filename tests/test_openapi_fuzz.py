"""Schemathesis against a real server: no 5xx, no status the document does not list, no
answer that its model (chatapp/web/schemas.py) does not describe."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from chatapp.cli import main

from .servers import Server

EXAMPLES = 25  # per operation: ~650 requests, ~20 s


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    tmp: Path = tmp_path_factory.mktemp("openapi-fuzz")
    # The database the server will open (tests/servers.py), prepared through the CLI.
    env = {"CHATAPP_SECRET_KEY": "real-server-test-secret-" + "k" * 32,
           "CHATAPP_INSTANCE_PATH": str(tmp / "instance"),
           "CHATAPP_DATABASE_URL": f"sqlite:///{tmp / 'chatapp.db'}",
           "CHATAPP_BROKER_URL": "memory://"}
    made = CliRunner().invoke(main, ["create-user", "fuzzer", "--admin"], env=env,
                              input="correct horse battery\n")
    assert made.exit_code == 0, made.output
    token = CliRunner().invoke(main, ["create-token", "fuzzer"], env=env)
    assert token.exit_code == 0, token.output
    server = Server(tmp, {"CHATAPP_BROKER_URL": "memory://"}).start()
    try:
        yield server, token.stdout.splitlines()[0]
    finally:
        server.kill()


def test_no_server_error_and_no_undocumented_answer(live):  # type: ignore[no-untyped-def]
    """Every operation, EXAMPLES generated cases each, as an admin's bot (bearer token)."""
    server, token = live
    schema = schemathesis.openapi.from_url(f"{server.base}/api/v1/openapi.json")
    headers = {"Authorization": f"Bearer {token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    strategies = [operation.as_strategy() for operation in operations]
    # Random slugs only find 404s: fuzz the bodies and queries of the room that exists too.
    strategies += [operation.as_strategy(path_parameters={"slug": "general"})
                   for operation in operations if "{slug}" in operation.path]
    for strategy in strategies:

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def run(case):  # type: ignore[no-untyped-def]
            response = case.call(headers=headers)
            case.validate_response(response, checks=[
                not_a_server_error, status_code_conformance, response_schema_conformance])

        run()

