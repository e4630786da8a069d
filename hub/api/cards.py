"""Model cards: Markdown or a standalone page."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Response

from agent.errors import AgentError
from hub.api.auth import Admin
from hub.api.bodies import BoundedRoute
from hub.api.deps import HubDep, ModelName, VersionName
from hub.api.schemas import errors
from hub.modelcard import card_data, card_html, card_markdown

router = APIRouter(route_class=BoundedRoute, tags=["models"])


@router.get("/api/v1/models/{model}/{version}/card",
            responses={200: {"content": {"text/markdown": {}, "text/html": {}},
                             "description": "The card"}, **errors(401, 403, 404, 422)})
def model_card(model: ModelName, version: VersionName, hub: HubDep, who: Admin,
               format: Literal["md", "html"] = "md") -> Response:
    """The version's model card, Markdown (format=md) or a standalone page (format=html)."""
    try:
        data = card_data(hub.engine, model, version)
    except AgentError as exc:
        raise HTTPException(404, str(exc)) from None
    if format == "html":
        return Response(card_html(data), media_type="text/html")
    return Response(card_markdown(data), media_type="text/markdown")
