"""The HTTP client every hub exchange uses: base URL, timeout, the gateway's token, and TLS
verified against the configured CA (or the system's)."""

from __future__ import annotations

import ssl

import httpx

from agent.config import HubConfig, reveal


def hub_client(config: HubConfig, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    verify: ssl.SSLContext | bool = True
    if config.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(config.ca_file))
    return httpx.AsyncClient(base_url=config.url, timeout=config.timeout_s, verify=verify,
                             transport=transport,
                             headers={"Authorization": f"Bearer {reveal(config.token)}"})
