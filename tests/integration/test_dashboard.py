"""The hub's dashboard in headless Chromium: the page loads with an admin token and shows what
the API holds (fleet, versions, audit trail); a screenshot is kept as a test artefact."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from hub.cli import main as hub_main
from hub.registry import publish
from hub.rollouts import deploy
from hub.server import HubServer
from hub.storage import add_admin_token, add_gateway

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


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


def test_dashboard_shows_the_fleet(hub: HubServer, hub_db: Engine, trained: dict[str, Path],
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    token = add_gateway(hub_db, "press-7", group="press")
    admin = add_admin_token(hub_db)
    publish(hub_db, hub.data, trained["bundle"], [trained["pub"]])
    deploy(hub_db, "moulding-nok", "1.0.0", "group:press", "immediate")
    report = {"active": {"name": "moulding-nok", "version": "1.0.0", "sha256": "x", "since": time.time()},
              "health": "warning", "outbox_depth": 17,
              "metrics": {"monitor": {"rolling_accuracy": 0.912, "psi": {"barrel_temp_1": 0.31}}}}
    with httpx.Client(base_url=hub.url) as c:
        r = c.post("/api/v1/gateways/press-7/status", headers={"Authorization": f"Bearer {token}"},
                   content=json.dumps(report))
        assert r.status_code == 200
        card = c.get("/api/v1/models/moulding-nok/1.0.0/card", params={"format": "html"},
                     headers={"Authorization": f"Bearer {admin}"})
        assert card.status_code == 200 and "Intended use" in card.text and "press-7" in card.text
        points = c.get("/api/v1/metrics", headers={"Authorization": f"Bearer {admin}"}).json()
        assert points[0]["accuracy"] == 0.912

    url = f"{hub.url}/dashboard#token={admin}"
    dom = run_chromium(["--dump-dom", url], tmp_path / "profile")
    assert 'data-loaded="yes"' in dom, dom[-3000:]
    for text in ("press-7", "moulding-nok 1.0.0", "WARNING", "0.912", "17", "published", "deployed"):
        assert text in dom, text
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    shot.unlink(missing_ok=True)
    run_chromium([f"--screenshot={shot}", "--window-size=1280,1400", url], tmp_path / "profile2")
    assert shot.stat().st_size > 10_000

    # the model card from the command line too
    assert hub_main(["--db", str(hub_db.url), "--data", str(hub.data), "card", "moulding-nok", "1.0.0"]) == 0
    assert "# Model card: moulding-nok 1.0.0" in capsys.readouterr().out
