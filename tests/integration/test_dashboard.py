"""The hub's dashboard in headless Chromium: with an admin token it shows what the API holds
(fleet with per-class figures, a chart with a time axis, units and a legend, versions with their
holdout figures, the audit trail), rounded; a wrong token and a failed refresh are shown as
errors. Model cards count each version's outcomes since its own activation. Screenshots are kept
as test artefacts."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.cli import main as hub_main
from hub.registry import publish
from hub.retrain import evaluate_triggers, set_policy
from hub.rollouts import deploy
from hub.server import HubServer
from hub.storage import GatewayMetric, add_admin_token, add_gateway

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DASHBOARD = Path(__file__).resolve().parents[2] / "hub" / "static" / "dashboard.html"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--allow-file-access-from-files"]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("EDGE_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


def run_chromium(args: list[str], profile: Path) -> str:
    done = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000",
                           *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def screenshot(url: str, name: str, profile: Path, height: int = 1500) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / name
    shot.unlink(missing_ok=True)
    run_chromium([f"--screenshot={shot}", f"--window-size=1280,{height}", url], profile)
    assert shot.stat().st_size > 10_000
    return shot


def monitor(balanced: float, nok: float, ok: float, version: str,
            confusion: list[list[int]]) -> dict[str, Any]:
    return {"rolling_accuracy": 0.912, "rolling_balanced_accuracy": balanced,
            "rolling_cost_per_part": 0.31416, "rolling_labelled": 200,
            "rolling_per_class": {"NOK": {"support": 30, "recall": nok, "precision": 0.8},
                                  "OK": {"support": 170, "recall": ok, "precision": 0.95}},
            "psi": {"barrel_temp_1": 0.31},
            "since_activation": {"version": version, "labelled": sum(map(sum, confusion)),
                                 "classes": ["NOK", "OK"], "confusion": confusion}}


def post_status(hub: HubServer, token: str, version: str, mon: dict[str, Any], health: str = "ok") -> None:
    active = {"name": "moulding-nok", "version": version, "sha256": "x", "since": time.time() - 600}
    report = {"active": active, "health": health, "outbox_depth": 17, "metrics": {"monitor": mon}}
    with httpx.Client(base_url=hub.url) as c:
        r = c.post("/api/v1/gateways/press-7/status", headers={"Authorization": f"Bearer {token}"},
                   content=json.dumps(report))
        assert r.status_code == 200


def test_dashboard_and_model_cards(hub: HubServer, hub_db: Engine, trained: dict[str, Path],
                                   versions: dict[str, Path], tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    token = add_gateway(hub_db, "press-7", group="press")
    admin = add_admin_token(hub_db)
    for bundle in (trained["bundle"], versions["1.1.0"]):
        publish(hub_db, hub.data, bundle, [trained["pub"]])
    deploy(hub_db, "moulding-nok", "1.0.0", "group:press", "immediate")
    set_policy(hub_db, "moulding-nok", {"sustain_s": 3600})  # the hub keeps what each version did

    # 1.0.0 ran, then 1.1.0: each card counts only its own version's outcomes since activation
    post_status(hub, token, "1.0.0", monitor(0.61, 0.3, 0.92, "1.0.0", [[9, 21], [14, 156]]))
    evaluate_triggers(hub_db, hub.data, background=False)
    post_status(hub, token, "1.1.0", monitor(0.9234, 2 / 3, 0.95, "1.1.0", [[20, 10], [3, 57]]), "warning")
    evaluate_triggers(hub_db, hub.data, background=False)
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {admin}"}) as c:
        cards = {v: c.get(f"/api/v1/models/moulding-nok/{v}/card", params={"format": "md"}).text
                 for v in ("1.0.0", "1.1.0")}
        html_card = c.get("/api/v1/models/moulding-nok/1.1.0/card", params={"format": "html"})
        points = c.get("/api/v1/metrics").json()
    assert "press-7: 200 labelled outcomes of this version" in cards["1.0.0"]
    assert "Period covered: the hub keeps telemetry 30 days (since " in cards["1.0.0"]
    assert "no longer running" in cards["1.0.0"]
    assert "press-7: 90 labelled outcomes of this version" in cards["1.1.0"]
    assert "(now running)" in cards["1.1.0"]
    # per class with 95% intervals: 20 of 30 NOK parts caught
    assert re.search(r"\| NOK \| 30 \| 0\.667 \(0\.49-0\.81\) \|", cards["1.1.0"]), cards["1.1.0"]
    assert "| NOK | 30 | 0.300 (" in cards["1.0.0"]
    assert "## Metrics on holdout" in cards["1.0.0"] and "balanced accuracy" in cards["1.0.0"]
    assert html_card.status_code == 200 and "<table>" in html_card.text and "Intended use" in html_card.text
    assert points[0]["accuracy"] == 0.912 and points[0]["rolling_balanced_accuracy"] == 0.61
    assert points[0]["recall"] == {"NOK": 0.3, "OK": 0.92}

    # a chart needs points over time: half an hour of the gateway's history
    now = time.time()
    with Session(hub_db) as s, s.begin():
        for i in range(30):
            nok = 0.95 if i < 12 else (0.1 if i < 20 else 0.9)
            bad = 12 <= i < 20
            s.add(GatewayMetric(gateway_id="press-7", at=now - 1800 + 60 * i, model="moulding-nok",
                                version="1.0.0" if i < 22 else "1.1.0", accuracy=0.8 if bad else 0.9,
                                drift_score=0.35 if bad else 0.05, health="alarm" if i == 14 else "ok",
                                figures={"rolling_balanced_accuracy": 0.93 if nok > 0.5 else 0.52,
                                         "rolling_cost_per_part": 0.2, "recall": {"NOK": nok, "OK": 0.94}}))

    url = f"{hub.url}/dashboard#token={admin}"
    dom = run_chromium(["--dump-dom", url], tmp_path / "profile")
    assert 'data-loaded="yes"' in dom, dom[-3000:]
    for text in ("press-7", "moulding-nok 1.1.0", "WARNING", "0.923", "NOK 0.667 · OK 0.950", "0.314",
                 "time (UTC)", "share of labelled parts (0-1)", "drift score (largest PSI)",
                 "balanced accuracy (last 0.923)", "NOK recall (last", "OK recall (last",
                 "alarm (dashed line)", "deployed (dashed line)", "holdout recall per class", "published",
                 "Data kept: telemetry 30 days (since ", "labelled samples 365 days",
                 "Chart covers " + time.strftime("%Y-%m-%d %H:%M", time.gmtime(now - 1800))):
        assert text in dom, text
    assert "0.66666" not in dom and "0.9234" not in dom  # figures are rounded
    ticks = re.findall(r'class="tick"[^>]*>(\d\d:\d\d)<', dom)
    # a time axis in order: six steps of about 5 minutes (labels cut to the minute), and the
    # half hour may cross midnight (23:49 ... 00:19), so the steps are taken modulo a day
    minutes = [int(t[:2]) * 60 + int(t[3:]) for t in ticks]
    steps = [(b - a) % 1440 for a, b in itertools.pairwise(minutes)]
    assert len(ticks) == 7 and all(4 <= step <= 5 for step in steps), ticks
    screenshot(url, "dashboard.png", tmp_path / "profile2")

    # a wrong token is an error the page says, not an empty page
    dom = run_chromium(["--dump-dom", f"{hub.url}/dashboard#token=not-a-token"], tmp_path / "profile3")
    assert "the hub refused this token (HTTP 401): enter an admin token" in dom and 'data-loaded' not in dom
    # so is a refresh that cannot reach the hub (here: the page opened without it)
    offline = f"file://{DASHBOARD}#token={admin}"
    dom = run_chromium(["--dump-dom", offline], tmp_path / "profile4")
    assert "Refresh failed at" in dom and "could not reach the hub" in dom and "No data shown" in dom
    screenshot(offline, "dashboard-error.png", tmp_path / "profile5", height=400)

    # the model card from the command line too
    assert hub_main(["--db", str(hub_db.url), "--data", str(hub.data), "card", "moulding-nok", "1.0.0"]) == 0
    assert "# Model card: moulding-nok 1.0.0" in capsys.readouterr().out
