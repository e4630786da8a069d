"""Schemathesis against the hub's own /openapi.json, every operation with three kinds of
caller: an admin token, a gateway token (on random paths and on its own gateway's) and none.
Checks: no server error, status codes, content types, headers and bodies as documented, and
schema-invalid requests refused. Bounded: EXAMPLES examples per operation (test-artifacts/
schemathesis.json records how many requests were made)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import create_engine

from hub.app import create_app
from hub.storage import add_admin_token, add_gateway, migrate

EXAMPLES = int(os.environ.get("EDGE_SCHEMATHESIS_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]
GATEWAY = "gw-1"
CALLS: dict[str, int] = {}


def _make_hub() -> tuple[FastAPI, dict[str, str]]:
    """A hub on SQLite in a temporary folder, made when the module is collected: schemathesis
    parametrizes from the schema at that time (its lazy fixture loader does not work with this
    pytest)."""
    root = Path(tempfile.mkdtemp(prefix="schemathesis-"))
    atexit.register(shutil.rmtree, root, True)
    engine = create_engine(f"sqlite:///{root / 'hub.db'}")
    migrate(engine)
    tokens = {"admin": add_admin_token(engine, "fuzzer"), "gateway": add_gateway(engine, GATEWAY, "press")}
    add_gateway(engine, "gw-2", "press")
    return create_app(engine, root / "data"), tokens


APP, TOKENS = _make_hub()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _lost_query(case: Any, response: Any) -> bool:
    """Whether generated query parameters never reached the wire (a None value is not sent)."""
    sent = parse_qs(urlsplit(str(response.request.url)).query, keep_blank_values=True)
    return bool(set(case.query or {}) - set(sent))


def _checks(case: Any, injected: bool, lost_query: bool) -> list[Any]:
    """Expect a negative case refused only when its fault reached the hub: a missing or bad
    Authorization header is made valid by the token this test puts in, and a query parameter
    that was never sent cannot be refused."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return CHECKS
    faults = {loc for loc in (ParameterLocation.QUERY, ParameterLocation.PATH, ParameterLocation.BODY,
                              ParameterLocation.HEADER) if meta.is_negative_at(loc)}
    if injected:
        faults.discard(ParameterLocation.HEADER)
    if lost_query:
        faults.discard(ParameterLocation.QUERY)
    if not faults:
        return [c for c in CHECKS if c is not negative_data_rejection]
    return CHECKS


def _call(case: Any, who: str, headers: dict[str, str]) -> None:
    response = case.call(headers=headers)
    CALLS[who] = CALLS.get(who, 0) + 1
    case.validate_response(response, checks=_checks(case, bool(headers), _lost_query(case, response)))


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_every_operation_with_every_kind_of_caller(case: Any) -> None:
    tokens = TOKENS
    _call(case, "none", {})
    _call(case, "admin", {"Authorization": f"Bearer {tokens['admin']}"})
    _call(case, "gateway", {"Authorization": f"Bearer {tokens['gateway']}"})
    if case.path_parameters and "gateway_id" in case.path_parameters:
        case.path_parameters = {**case.path_parameters, "gateway_id": GATEWAY}
        _call(case, "gateway-own", {"Authorization": f"Bearer {tokens['gateway']}"})


def test_record_the_size_of_the_run() -> None:
    """Runs after the fuzzing above (file order): the figures for the docs."""
    total = sum(CALLS.values())
    assert total >= 3 * EXAMPLES, CALLS  # it really ran
    out = Path(__file__).resolve().parents[2] / "test-artifacts"
    out.mkdir(exist_ok=True)
    (out / "schemathesis.json").write_text(json.dumps({"examples_per_operation": EXAMPLES,
                                                       "requests": CALLS, "total": total}, indent=1))
