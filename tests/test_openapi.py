"""GET /api/v1/openapi.json: a valid OpenAPI 3.1 document covering every API rule."""

from __future__ import annotations

import pytest
from openapi_spec_validator import validate

from chatapp.web.openapi import openapi_path


async def test_the_document_is_valid_openapi_31(client):
    response = await client.get("/api/v1/openapi.json")  # public: tools read it first
    assert response.status_code == 200
    document = await response.get_json()
    assert document["openapi"] == "3.1.0"
    validate(document)


async def test_every_api_and_hook_rule_is_documented(app, client):
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    rules = [
        (method, rule.rule) for rule in app.url_map.iter_rules()
        if rule.rule.startswith(("/api/v1/", "/hooks/"))
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    ]
    assert len(rules) > 20
    missing = [(m, r) for m, r in rules
               if m.lower() not in document["paths"].get(openapi_path(r), {})]
    assert missing == []
    # And nothing documented that the app does not route.
    routed = {(m.lower(), openapi_path(r)) for m, r in rules}
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert documented - routed == set()


@pytest.mark.parametrize(("method", "path", "status"), [
    ("post", "/api/v1/rooms/{slug}/messages", "201"),
    ("post", "/hooks/{token}", "201"),
    ("delete", "/api/v1/messages/{message_id}", "204"),
    ("post", "/hooks/{token}", "429"),
    ("post", "/api/v1/rooms/{slug}/webhooks", "403"),
])
async def test_statuses_are_described_with_the_error_body(client, method, path, status):
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    responses = document["paths"][path][method]["responses"]
    assert status in responses
    if int(status) >= 400:
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}
        error = document["components"]["schemas"]["Error"]["properties"]["error"]
        assert error["required"] == ["status", "code", "message"]


async def test_summaries_come_from_the_views(client):
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    operation = document["paths"]["/hooks/{token}"]["post"]
    assert operation["summary"].startswith("Post a message to the hook's room")
    assert "security" not in operation
