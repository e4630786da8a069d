"""What a server offers (endpoints) and holds (a browse of its address space): enough to write
the `nodes:` list, and `--yaml` writes it.

A server is not trusted to be tidy: a node is listed once however many references lead to it
(address spaces with cycles exist), the walk keeps its own stack (no recursion limit on a deep
tree), names, ids and values are shown with their control characters escaped (nothing the
server sends can move the cursor or forge a line), and YAML strings are written by the YAML
library so that a node id reads back exactly as the server spells it."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import yaml
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
        try:
            cert = x509.load_der_x509_certificate(_first_cert(self.certificate))
            return printable(f"{cert.subject.rfc4514_string()}, valid until "
                             f"{cert.not_valid_after_utc.date()}, SHA-256 "
                             f"{cert.fingerprint(hashes.SHA256()).hex()}")
        except ValueError as exc:  # what the server sends is not a DER certificate
            return f"unreadable ({len(self.certificate)} bytes: {str(exc)[:60]})"


def printable(text: str) -> str:
    """Text from a server as one safe line: control characters (newlines, escapes) escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _enum_name(kind: Any, value: Any) -> str:
    try:
        return str(kind(value).name)
    except ValueError:  # a value the specification does not define: show it, do not fail
        return f"unknown({value})"


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
        policy = printable(str(ep.SecurityPolicyUri).rsplit("#", 1)[-1])
        tokens = [_enum_name(ua.UserTokenType, t.TokenType) for t in ep.UserIdentityTokens or []]
        mode = _enum_name(ua.MessageSecurityMode, ep.SecurityMode).rstrip("_")  # asyncua: None_
        out.append(Endpoint(printable(str(ep.EndpointUrl)), policy, mode, tokens,
                            printable(str(ep.Server.ApplicationUri)),
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
                 include_ns0: bool = False, deadline: float | None = None) -> tuple[list[BrowsedNode], bool]:
    """Depth first from ``start``, each node once; variables get their data type and current
    value. Stops at ``limit`` nodes or at the ``deadline`` (time.monotonic()), between two
    requests; returns the nodes and whether the deadline stopped it."""
    out: list[BrowsedNode] = []
    types: dict[str, str] = {}
    root = client.get_node(start)
    await root.read_browse_name()  # BadNodeIdUnknown here, not half-way through
    seen = {root.nodeid}
    stack: list[tuple[Any, int, list[str]]] = [(root, 1, [])]
    while stack and len(out) < limit:
        if deadline is not None and time.monotonic() > deadline:
            return out, True
        node, level, path = stack.pop()
        if level > depth:
            continue
        found = []
        for child in await node.get_children():
            if child.nodeid in seen:
                continue  # a second reference to a node already listed (or a cycle)
            seen.add(child.nodeid)
            if child.nodeid.NamespaceIndex == 0 and not include_ns0:
                continue  # the server's own standard nodes (Server, Aliases)
            found.append(child)
        below = []
        for child in found:
            if len(out) >= limit:
                break
            if deadline is not None and time.monotonic() > deadline:
                return out, True
            name = (await child.read_browse_name()).Name or ""
            node_class = (await child.read_node_class()).name
            data_type = value = None
            numeric = False
            if node_class == "Variable":
                data_type = await _data_type_name(client, child, types)
                numeric = data_type in _NUMERIC
                try:
                    value = _short(await child.read_value())
                except ua.UaStatusCodeError as exc:
                    value = f"<{_enum_name(ua.StatusCode, exc.code)}>"
            out.append(BrowsedNode(level, [*path, name], child.nodeid.to_string(), node_class,
                                   data_type, value, numeric))
            below.append((child, level + 1, [*path, name]))
        stack.extend(reversed(below))  # the first child is walked first, as a tree reads
    return out, False


def _short(value: Any) -> str:
    text = printable(repr(value) if not isinstance(value, str) else json.dumps(value))
    return text if len(text) <= 60 else text[:57] + "..."


def _quoted(text: str) -> str:
    """A YAML double-quoted scalar that reads back as exactly ``text`` (newlines, U+2028,
    astral characters and all)."""
    return yaml.safe_dump(text, default_style='"', allow_unicode=False, width=1 << 30).strip()


def tag_name(path: list[str]) -> str:
    return re.sub(r"[^a-z0-9]+", "_", ".".join(path).lower()).strip("_") or "tag"


def nodes_yaml(url: str, nodes: list[BrowsedNode], source_name: str = "plc") -> str:
    """A `sources:` entry with every numeric variable, ready to paste (node ids and tag names
    quoted as JSON strings, which YAML reads as they are)."""
    lines = [f"# edge-agent opcua browse {url}: {sum(n.numeric for n in nodes)} numeric variables;",
             "# rename the tags to what the model bundle calls its inputs",
             "sources:", "  - type: opcua", f"    name: {source_name}",
             f"    endpoint: {_quoted(url)}", "    nodes:"]
    used: set[str] = set()
    for n in nodes:
        if not n.numeric:
            continue
        tag, k = tag_name(n.path), 2
        while tag in used:
            tag, k = f"{tag_name(n.path)}_{k}", k + 1
        used.add(tag)
        lines.append(f"      - {{tag: {_quoted(tag)}, node_id: {_quoted(n.node_id)}}}"
                     f"  # {printable(n.data_type or '')}, now {n.value}")
    return "\n".join(lines) + "\n"
