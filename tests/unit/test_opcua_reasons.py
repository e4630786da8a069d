"""Refusals explained (status code + what to do) and asyncua's closed-connection logs tamed."""

from __future__ import annotations

import logging
import socket

import pytest
from asyncua import ua

from agent.ingest.sources.opcua.logfilter import ClosedConnectionFilter
from agent.ingest.sources.opcua.reasons import (
    Context,
    SecureChannelRefused,
    ServerNotTrusted,
    explain,
)

CTX = Context("opc.tcp://plc:4840", "urn:gw:edge", "/etc/edge-agent/pki/client-cert.der",
              "Basic256Sha256", "SignAndEncrypt")


@pytest.mark.parametrize(("exc", "reason", "advice"), [
    (ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUntrusted), "BadCertificateUntrusted",
     "trust it on the PLC"),
    (ua.UaStatusCodeError(ua.StatusCodes.BadCertificateUriInvalid), "BadCertificateUriInvalid",
     "urn:gw:edge"),
    (ua.UaStatusCodeError(ua.StatusCodes.BadTooManySessions), "BadTooManySessions",
     "close other clients"),
    (ua.UaStatusCodeError(ua.StatusCodes.BadUserAccessDenied), "BadUserAccessDenied", "password"),
    (ua.UaError("No matching endpoints: 3, http://opcfoundation.org/UA/SecurityPolicy#Aes256"),
     "BadSecurityPolicyRejected", "opcua endpoints opc.tcp://plc:4840"),
    (ua.UaError("Server certificate mismatch"), "server_certificate_mismatch", "export it again"),
    (ServerNotTrusted("CN=plc"), "server_untrusted", "trust_dir"),
    (SecureChannelRefused(""), "secure_channel_refused", "rejected"),
    (ConnectionRefusedError(111, "refused"), "connection_refused", "nothing listens"),
    (socket.gaierror(-2, "Name or service not known"), "dns", "does not resolve"),
    (TimeoutError(), "timeout", "firewall"),
    (ua.UaStatusCodeError(ua.StatusCodes.BadNotSupported), "BadNotSupported", "not supported"),
])
def test_every_refusal_has_its_code_and_what_to_do(exc: BaseException, reason: str,
                                                   advice: str) -> None:
    refusal = explain(exc, CTX)
    assert refusal.reason == reason
    assert advice.lower() in refusal.message.lower(), refusal.message
    assert "\n" not in refusal.message


def record(level: int, msg: str, exc: BaseException | None) -> logging.LogRecord:
    info = (type(exc), exc, None) if exc is not None else None
    return logging.LogRecord("asyncua.client.ua_session.UaSession", level, __file__, 1, msg, None,
                             info)


def test_closed_connection_errors_become_one_warning_line() -> None:
    f = ClosedConnectionFilter(period_s=60)
    first = record(logging.ERROR, "Publish iteration crashed; retrying in 1s",
                   ConnectionError("Connection is closed"))
    assert f.filter(first)
    assert first.levelno == logging.WARNING and first.exc_info is None
    assert first.getMessage() == ("opcua (asyncua): Publish iteration crashed: ConnectionError: "
                                  "Connection is closed")
    again = record(logging.ERROR, "Publish iteration crashed; retrying in 1s", ConnectionError("x"))
    assert not f.filter(again)  # once a minute is enough
    bug = record(logging.ERROR, "Exception calling subscription handler", ValueError("our bug"))
    assert f.filter(bug) and bug.levelno == logging.ERROR and bug.exc_info is not None
