"""asyncua logs every closed connection from several of its loops, at ERROR and with a
traceback ('Publish iteration crashed; retrying in 1s' and friends). The source already says
what happened in one line; this filter turns those records into one WARNING line each, without
the traceback, at most once a minute per message. Errors that are not about a lost connection
(a bug in a handler, a parse failure) pass unchanged."""

from __future__ import annotations

import asyncio
import logging
import time

from asyncua import ua
from asyncua.common.utils import NotEnoughData

# exceptions that only say "the connection is gone"
# (NotEnoughData: asyncua parsing a refusal it does not expect, as node-opcua sends for an
# untrusted certificate; the source reports the refusal itself)
_CLOSED = (ConnectionError, OSError, EOFError, asyncio.TimeoutError, asyncio.CancelledError,
           NotEnoughData)
_CLOSED_CODES = {"BadConnectionClosed", "BadSessionClosed", "BadSessionIdInvalid", "BadShutdown",
                 "BadServerHalted", "BadSecureChannelClosed", "BadSecureChannelIdInvalid",
                 "BadNoSubscription", "BadTimeout", "BadCommunicationError", "BadNotConnected",
                 "BadSubscriptionIdInvalid", "BadServerNotConnected"}
_CLOSED_TEXT = ("Publish iteration crashed", "close_session raised", "close_secure_channel raised",
                "Connection supervisor iteration crashed", "Error while renewing session",
                "Got error status from server", "ServiceFault", "Received an error",
                "Subscription recreation failed", "recreate failed",
                "Exception raised while parsing message from server")
LOGGERS = ("asyncua.client.client", "asyncua.client.ua_client.UASocketProtocol",
           "asyncua.client.ua_client.UaClient", "asyncua.client.ua_session.UaSession",
           "asyncua.client.ua_session", "asyncua.common.subscription")


def _about_closed(record: logging.LogRecord) -> bool:
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        if isinstance(exc, ua.UaStatusCodeError):
            return ua.StatusCode(exc.code).name in _CLOSED_CODES if exc.code else False
        return isinstance(exc, _CLOSED)
    message = record.getMessage()
    return any(text in message for text in _CLOSED_TEXT)


class ClosedConnectionFilter(logging.Filter):
    def __init__(self, period_s: float = 60.0) -> None:
        super().__init__()
        self.period_s = period_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not _about_closed(record):
            return True
        key = str(record.msg)[:60]
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.period_s:
            return False
        self._last[key] = now
        exc = record.exc_info[1] if record.exc_info else None
        detail = f": {type(exc).__name__}: {exc}" if exc is not None else ""
        record.msg = f"opcua (asyncua): {record.getMessage().split(';')[0]}{detail}"[:300]
        record.args = None
        record.exc_info = record.exc_text = None
        record.stack_info = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_INSTALLED = ClosedConnectionFilter()


def install() -> None:
    """Idempotent: attach the one filter to the loggers asyncua uses for its client loops."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if _INSTALLED not in logger.filters:
            logger.addFilter(_INSTALLED)
