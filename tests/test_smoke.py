"""The shortest path a new user takes: register, see the chat, post, read back."""

import json


async def test_register_post_and_read_back(auth):
    client, csrf = await auth.user("alice")
    response = await client.post(
        "/api/v1/rooms/general/messages",
        json={"body": "hello", "nonce": "n1"},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 201
    page = await (await client.get("/api/v1/rooms/general/messages")).get_json()
    assert [m["body"] for m in page["messages"]] == ["hello"]

    async with client.websocket("/ws") as ws:
        hello = json.loads(await ws.receive())
        hello = hello[0] if isinstance(hello, list) else hello
        assert hello["type"] == "hello"
        assert hello["rooms"][0]["last_seq"] == 1
