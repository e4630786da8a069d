"""What a server offers (endpoints) and holds (a browse of its address space): enough to write
the `nodes:` list, and `--yaml` writes it."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from asyncua import Client, ua
from cryptography import x509
from cryptography.hazmat.primitives import hashes

OBJECTS = "i=85"


@dataclass(frozen=True)
class Endpoint:
    url: str
    policy: str
    mode: str
    user_tokens: list[str]
    server_uri: str
    certificate: bytes | None

    def certificate_summary(self) -> str:
        if not self.certificate:
            return "no certificate"
        cert = x509.load_der_x509_certificate(_first_cert(self.certificate))
        return (f"{cert.subject.rfc4514_string()}, valid until "
                f"{cert.not_valid_after_utc.date()}, SHA-256 {cert.fingerprint(hashes.SHA256()).hex()}")


def _first_cert(der: bytes) -> bytes:
    # a chain is concatenated DER: the first certificate's length is in its header
    if len(der) > 4 and der[0] == 0x30 and der[1] == 0x82:
        return der[: 4 + int.from_bytes(der[2:4], "big")]
    return der


async def endpoints(url: str, request_timeout_s: float) -> list[Endpoint]:
    client = Client(url, timeout=request_timeout_s)
    async with asyncio.timeout(request_timeout_s * 2):
        found = await client.connect_and_get_server_endpoints()
    out = []
    for ep in found:
        policy = str(ep.SecurityPolicyUri).rsplit("#", 1)[-1]
        tokens = [ua.UserTokenType(t.TokenType).name for t in ep.UserIdentityTokens or []]
        mode = ua.MessageSecurityMode(ep.SecurityMode).name.rstrip("_")  # asyncua spells None_
        out.append(Endpoint(ep.EndpointUrl, policy, mode,
                            tokens, ep.Server.ApplicationUri,
                            _first_cert(ep.ServerCertificate) if ep.ServerCertificate else None))
    return out


@dataclass(frozen=True)
class BrowsedNode:
    depth: int
    path: list[str]  # browse names from below the start node
    node_id: str
    node_class: str
    data_type: str | None
    value: str | None
    numeric: bool


async def _data_type_name(client: Client, node: Any, cache: dict[str, str]) -> str:
    dt = await node.read_data_type()
    key = dt.to_string()
    if key not in cache:
        try:
            cache[key] = (await client.get_node(dt).read_browse_name()).Name
        except ua.UaError:
            cache[key] = key
    return cache[key]


_NUMERIC = {"Boolean", "SByte", "Byte", "Int16", "UInt16", "Int32", "UInt32", "Int64", "UInt64",
            "Float", "Double", "Integer", "UInteger", "Number"}


async def browse(client: Client, start: str, depth: int, limit: int = 1000,
                 include_ns0: bool = False) -> list[BrowsedNode]:
    """Breadth by depth from ``start``; variables get their data type and current value."""
    out: list[BrowsedNode] = []
    types: dict[str, str] = {}
    root = client.get_node(start)
    await root.read_browse_name()  # BadNodeIdUnknown here, not half-way through

    async def walk(node: Any, level: int, path: list[str]) -> None:
        if level > depth or len(out) >= limit:
            return
        for child in await node.get_children():
            if len(out) >= limit:
                return
            if child.nodeid.NamespaceIndex == 0 and not include_ns0:
                continue  # the server's own standard nodes (Server, Aliases)
            name = (await child.read_browse_name()).Name
            node_class = (await child.read_node_class()).name
            data_type = value = None
            numeric = False
            if node_class == "Variable":
                data_type = await _data_type_name(client, child, types)
                numeric = data_type in _NUMERIC
                try:
                    value = _short(await child.read_value())
                except ua.UaStatusCodeError as exc:
                    value = f"<{ua.StatusCode(exc.code).name}>"
            out.append(BrowsedNode(level, [*path, name], child.nodeid.to_string(), node_class,
                                   data_type, value, numeric))
            await walk(child, level + 1, [*path, name])

    await walk(root, 1, [])
    return out


def _short(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def tag_name(path: list[str]) -> str:
    return re.sub(r"[^a-z0-9]+", "_", ".".join(path).lower()).strip("_") or "tag"


def nodes_yaml(url: str, nodes: list[BrowsedNode], source_name: str = "plc") -> str:
    """A `sources:` entry with every numeric variable, ready to paste (node ids and tag names
    quoted as JSON strings, which YAML reads as they are)."""
    lines = [f"# edge-agent opcua browse {url}: {sum(n.numeric for n in nodes)} numeric variables;",
             "# rename the tags to what the model bundle calls its inputs",
             "sources:", "  - type: opcua", f"    name: {source_name}",
             f"    endpoint: {json.dumps(url)}", "    nodes:"]
    used: set[str] = set()
    for n in nodes:
        if not n.numeric:
            continue
        tag, k = tag_name(n.path), 2
        while tag in used:
            tag, k = f"{tag_name(n.path)}_{k}", k + 1
        used.add(tag)
        lines.append(f"      - {{tag: {json.dumps(tag)}, node_id: {json.dumps(n.node_id)}}}"
                     f"  # {n.data_type}, now {n.value}")
    return "\n".join(lines) + "\n"
