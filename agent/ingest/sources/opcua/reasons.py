"""Why a session failed, in one line with the OPC UA status code and what to do.

The reason code (a status name such as BadCertificateUntrusted, or connection_refused,
timeout, dns, closed) is stable: it is the metric label and what scripts match on.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass

from asyncua import ua
from asyncua.common.utils import NotEnoughData


class ServerNotTrusted(Exception):
    """The server's certificate is neither the pinned one nor in the trust directory."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SecureChannelRefused(Exception):
    """The server answered OpenSecureChannel with something asyncua cannot parse and closed the
    socket: node-opcua refuses an untrusted client certificate this way (a ServiceFault where
    asyncua expects the channel), so the status code itself is lost."""


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


@dataclass(frozen=True)
class Context:
    """What a message needs to say what to do: the files and URIs of this source."""

    endpoint: str
    application_uri: str
    certificate: str | None
    policy: str
    mode: str


# status code -> what the operator should do (the code itself goes in front of it)
_ADVICE: dict[str, str] = {
    "BadCertificateUntrusted": (
        "the server does not trust this agent's certificate {certificate}: trust it on the PLC "
        "(S7-1500: TIA Portal > OPC UA > Server > Security > trusted clients; most servers: move "
        "it from the 'rejected' to the 'trusted' certificate folder), then wait for the next retry"),
    "BadCertificateUriInvalid": (
        "the URI in the certificate {certificate} is not the ApplicationUri the agent sends "
        "({application_uri}): make a matching certificate with `edge-agent opcua certs create "
        "--config CONFIG` (it uses opcua application_uri) and trust the new one on the server"),
    "BadCertificateTimeInvalid": (
        "the certificate {certificate} is expired or not yet valid (check this PC's and the "
        "PLC's clocks): make a new one with `edge-agent opcua certs create --config CONFIG --force`"),
    "BadCertificateHostNameInvalid": (
        "the certificate {certificate} does not name this host: add it to security.host_names and "
        "run `edge-agent opcua certs create --config CONFIG --force`"),
    "BadCertificateUseNotAllowed": (
        "the server refuses the key usage of {certificate}: make an application certificate with "
        "`edge-agent opcua certs create --config CONFIG --force`"),
    "BadCertificateInvalid": (
        "the server finds {certificate} malformed: make a new one with `edge-agent opcua certs "
        "create --config CONFIG --force`"),
    "BadCertificateRevoked": "the server revoked {certificate}: make and trust a new one",
    "BadCertificateIssuerRevoked": "the CA that issued {certificate} is revoked on the server",
    "BadSecurityChecksFailed": (
        "the secure channel was refused; most servers say this for a client certificate they do "
        "not trust yet ({certificate}) or for a policy/mode mismatch: trust the certificate on the "
        "server and compare with `edge-agent opcua endpoints {endpoint}`"),
    "BadSecurityPolicyRejected": (
        "the server does not offer {policy} with {mode}: `edge-agent opcua endpoints {endpoint}` "
        "lists what it offers; set security.policy and security.mode to one of them"),
    "BadSecurityModeRejected": (
        "the server does not accept security mode {mode}: `edge-agent opcua endpoints {endpoint}` "
        "lists what it offers"),
    "BadUserAccessDenied": "the server refused the user name or password: check username and password",
    "BadIdentityTokenRejected": "the server refused the user identity: check username and password",
    "BadIdentityTokenInvalid": (
        "the server does not accept this kind of identity: set or remove username/password to "
        "match its user token policies (`edge-agent opcua endpoints {endpoint}`)"),
    "BadUserSignatureInvalid": "the server refused the user signature: check username and password",
    "BadTooManySessions": (
        "the server has no session left: close other clients (an engineering tool, an HMI) or "
        "raise its session limit"),
    "BadMaxConnectionsReached": "the server accepts no more connections: close other clients",
    "BadTcpNotEnoughResources": "the server has no resources for another connection: close other clients",
    "BadServerHalted": "the server is shutting down or halted: wait for the PLC to restart",
    "BadShutdown": "the server is shutting down: the agent reconnects when it is back",
    "BadTimeout": "the server did not answer in time: check the network and timeout_s",
    "BadTcpEndpointUrlInvalid": "the server does not know the path of {endpoint}: check the endpoint URL",
    "BadServerUriInvalid": "the server refused its own URI as the client sent it: check the endpoint",
}


def explain(exc: BaseException, ctx: Context) -> Refusal:
    """One line for any way a session attempt can fail, never a traceback."""
    fill = {"endpoint": ctx.endpoint, "application_uri": ctx.application_uri,
            "certificate": ctx.certificate or "(none)", "policy": ctx.policy, "mode": ctx.mode}
    if isinstance(exc, SecureChannelRefused):
        return Refusal("secure_channel_refused", (
            "the server refused the secure channel before any session (servers such as node-opcua "
            f"answer BadCertificateUntrusted this way): trust this agent's certificate "
            f"{fill['certificate']} on the server (it is now in its 'rejected' folder), and check "
            f"it offers {ctx.policy}/{ctx.mode}: `edge-agent opcua endpoints {ctx.endpoint}`"))
    if isinstance(exc, ServerNotTrusted):
        return Refusal("server_untrusted", (
            f"the server's certificate is not trusted by this agent ({exc.detail}): check it is "
            "the PLC's, then copy it into security.trust_dir (or pin it as server_certificate); "
            f"`edge-agent opcua endpoints {ctx.endpoint} --save-certificate FILE` fetches it"))
    if isinstance(exc, ua.UaStatusCodeError):
        code = exc.code
        name = ua.StatusCode(code).name if code is not None else type(exc).__name__
        advice = _ADVICE.get(name)
        text = advice.format(**fill) if advice else (_doc(code) or "the server refused the request")
        return Refusal(name, f"{name}: {text}")
    if isinstance(exc, ua.UaError):
        text = str(exc)
        if text.startswith("No matching endpoints"):
            return Refusal("BadSecurityPolicyRejected", "BadSecurityPolicyRejected: " +
                           _ADVICE["BadSecurityPolicyRejected"].format(**fill))
        if "certificate mismatch" in text.lower():
            return Refusal("server_certificate_mismatch", (
                "the server presents another certificate than the pinned security.server_certificate "
                "(the PLC got a new one?): export it again, or use security.trust_dir"))
        return Refusal("protocol_error", f"OPC UA error: {text[:160]}")
    if isinstance(exc, socket.gaierror):
        return Refusal("dns", f"the host of {ctx.endpoint} does not resolve ({exc.strerror}): "
                              "check the endpoint's host name or use its IP address")
    if isinstance(exc, ConnectionRefusedError):
        return Refusal("connection_refused", f"nothing listens at {ctx.endpoint}: is the PLC on "
                                             "and its OPC UA server enabled on that port?")
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return Refusal("timeout", f"no answer from {ctx.endpoint} in time: check the network "
                                  "path (firewall, VLAN) and timeout_s")
    if isinstance(exc, NotEnoughData | AssertionError | EOFError | ConnectionError):
        # servers that refuse a certificate by closing the socket say nothing more than this
        return Refusal("closed", (
            f"the server closed the connection ({type(exc).__name__}); if this happens while "
            f"connecting, it most likely does not trust this agent's certificate {fill['certificate']} "
            f"yet or does not offer {ctx.policy}/{ctx.mode}: trust the certificate on the server, "
            f"and compare with `edge-agent opcua endpoints {ctx.endpoint}`"))
    if isinstance(exc, OSError):
        return Refusal("network", f"network error towards {ctx.endpoint}: {exc.strerror or exc}")
    return Refusal("error", f"{type(exc).__name__}: {str(exc)[:160]}")


def _doc(code: int | None) -> str:
    try:
        return str(ua.StatusCode(code).doc or "")
    except (KeyError, AttributeError):
        return ""
