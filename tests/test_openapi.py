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
        schemas = document["components"]["schemas"]
        detail = schemas["Error"]["properties"]["error"]["$ref"].rsplit("/", 1)[1]
        assert schemas[detail]["required"] == ["status", "code", "message"]


async def test_summaries_come_from_the_views(client):
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    operation = document["paths"]["/hooks/{token}"]["post"]
    assert operation["summary"].startswith("Post a message to the hook's room")
    assert "security" not in operation


async def test_no_documentation_page_pulls_a_cdn(client):
    # quart-schema's Swagger, Redoc and Scalar pages load their scripts from CDNs,
    # which the 'self'-only CSP blocks: none of them is served, only the JSON.
    for path in ("/docs", "/redocs", "/scalar", "/openapi.json", "/api/v1/docs"):
        assert (await client.get(path)).status_code == 404, path


async def test_bodies_come_from_the_views_models(client):
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    post = document["paths"]["/api/v1/rooms/{slug}/messages"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewMessage"}
    new_message = document["components"]["schemas"]["NewMessage"]
    assert new_message["required"] == ["body"]  # nonce, reply_to, attachments: optional
    assert new_message["properties"]["nonce"] == {"type": "string"}  # absent, not null
    message = document["components"]["schemas"]["Message"]
    assert message["properties"]["reply_to"] == {
        "anyOf": [{"type": "integer"}, {"type": "null"}]}  # always there, maybe null
    upload = document["paths"]["/api/v1/uploads"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    history = document["paths"]["/api/v1/rooms/{slug}/messages"]["get"]["parameters"]
    limit = next(p for p in history if p["name"] == "limit")
    assert limit == {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 200}}


async def test_a_refusal_keeps_the_spec_body(auth):
    # The models only describe: the views' own checks answer, with SPEC §5's body.
    client, token = await auth.user("alice")
    response = await client.post("/api/v1/rooms/general/messages", json={"body": 5},
                                 headers={"X-CSRF-Token": token})
    assert response.status_code == 422
    error = (await response.get_json())["error"]
    assert error["status"] == 422 and error["field"] == "body"
    response = await client.post("/api/v1/rooms/general/messages", data="body=hi",
                                 headers={"X-CSRF-Token": token})
    assert response.status_code == 400
    assert (await response.get_json())["error"]["code"] == "invalid_json"


async def test_every_operation_names_its_success_answer(app, client):
    # quart-schema lists every rule; a view without @documented would have no 2xx.
    document = await (await client.get("/api/v1/openapi.json")).get_json()
    undocumented = [(method, path) for path, ops in document["paths"].items()
                    for method, op in ops.items()
                    if not any(status.startswith("2") for status in op["responses"])]
    assert undocumented == []
    # Its app-wide hooks are left out: responses and JSON stay Quart's own.
    assert type(app.json) is app.json_provider_class
    assert not hasattr(app.make_response, "__wrapped__")
