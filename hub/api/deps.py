"""Dependencies every router shares: the hub context and the checked path parameters."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from hub.context import HubContext
from hub.ids import GATEWAY_ID_MAX, GATEWAY_ID_PATTERN, TARGET_MAX, TARGET_PATTERN


def hub_of(request: Request) -> HubContext:
    hub: HubContext = request.app.state.hub
    return hub


async def get_hub(request: Request) -> HubContext:  # async: no thread-pool hop per request
    return hub_of(request)


HubDep = Annotated[HubContext, Depends(get_hub)]
GatewayId = Annotated[str, Path(pattern=GATEWAY_ID_PATTERN, max_length=GATEWAY_ID_MAX,
                                description="A gateway id (docs/hub.md).")]
Target = Annotated[str, Path(pattern=TARGET_PATTERN, max_length=TARGET_MAX,
                             description="A gateway id or group:NAME.")]
ModelName = Annotated[str, Path(min_length=1, max_length=128)]
VersionName = Annotated[str, Path(min_length=1, max_length=64)]
Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="A bundle's manifest sha256.")]
