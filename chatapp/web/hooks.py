"""POST /hooks/<token>: incoming webhooks (SPEC §12). The token is the credential:
no session, no CSRF (a browser's cookies grant nothing here)."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, current_app, request

from ..chat import ChatError
from ..errors import ApiError, json_refusal
from ..limits import WEBHOOK_RATE
from ..webhooks import Webhooks
from . import schemas as s
from .lifecycle import services
from .schemas import documented

bp = Blueprint("hooks", __name__, url_prefix="/hooks")


def webhooks() -> Webhooks:
    svc = services()
    # Tests lower the per-hook budget through this key; it has no environment variable.
    return Webhooks(svc.storage, svc.chat, svc.limits,
                    current_app.config.get("CHATAPP_WEBHOOK_RATE", WEBHOOK_RATE))


@bp.errorhandler(ChatError)
async def chat_error(error: ChatError) -> Any:
    return json_refusal(error)


@bp.post("/<token>")
@documented({201: s.Message}, body=s.HookMessage, errors=(404, 413, 422, 429))
async def post(token: str) -> Any:
    """Post a message to the hook's room as its bot; a repeated nonce returns the stored one."""
    data = await request.get_json(force=True)  # bad JSON: a 400 (errors.JsonRequest)
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object", "invalid_json")
    message = await webhooks().post(token, data.get("body"), data.get("nonce"))
    return message.to_json(), 201
