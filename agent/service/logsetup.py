"""Logging to stderr in a journald-friendly form (no timestamps under systemd), JSON optional,
with one limiter for repeated warnings (agent.aio.loglimit) on the handler."""

from __future__ import annotations

import json
import logging
import os
import sys

from agent.aio.loglimit import install as install_limiter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class JournalFormatter(logging.Formatter):
    """Prefix the syslog priority so journald files each line at the right level.

    journald takes every line of the stream as an entry of its own: a traceback (or a message
    of several lines) is written as continuation lines, each with the same priority and a
    "| " marker, so `journalctl -p err` shows the whole traceback under its message."""

    PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
                logging.CRITICAL: 2}

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{self.PRIORITY.get(record.levelno, 6)}>{record.name}: "
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            text += "\n" + record.exc_text
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info)
        first, *rest = text.splitlines() or [""]
        return "\n".join([prefix + first, *(f"{prefix}| {line}" for line in rest)])


def setup_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if as_json:
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    install_limiter(handler)  # repeated warnings: one line a minute and a count of the rest
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # library chatter (asyncua's revised-value notices, amqtt's per-client logs) is not ours:
    # our adapters log what matters about these connections at the right level
    for noisy in ("asyncua", "amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(max(logging.ERROR, root.level))
