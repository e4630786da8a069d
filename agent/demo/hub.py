"""The demo's hub: embedded (SQLite, loopback), given the first version of each model over its
admin API (the gateway then takes both from it, each model on its own), a canary of the quality
model part-way, the retrain policy; and what it recorded, for the summary and the report."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path
from typing import Any

from agent.service.agent import Agent


def _say(text: str) -> None:
    print(text, flush=True)


CANARY_AT = 0.08  # share of the run after which version 1.1.0 goes out as a canary


def demo_policy(speed: float, cycle_s: float = 30.0) -> dict[str, Any]:
    """How the hub keeps the model working in the demo, in parts of the line (turned into the
    policy's wall seconds at this speed). Retrain when the gateway's rolling balanced accuracy
    stays below 0.8 for 20 parts, on what the line did since then (a lookback of 60 parts: the
    rolling figure lags the change), once training and holdout hold at least 20 NOK and 20 OK
    parts each (the product's default min_per_class); the holdout is the newest 40% (enough NOK
    parts to judge on at about 15% NOK); roll out as a canary. The costs are the defaults."""
    part_s = cycle_s / speed
    return {"balanced_accuracy_below": 0.8, "sustain_s": 20 * part_s, "lookback_s": 60 * part_s,
            "min_rows": 150, "max_rows": 2000, "holdout_share": 0.4, "min_per_class": 20,
            "min_interval_s": 3600.0, "strategy": "canary", "canary_size": 1, "watch_s": 80 * part_s,
            "margin": 0.05, "min_class_recall": 0.5, "trainer": "auto"}


GROUP = "press-shop"


async def start_hub(out: Path, cfg: dict[str, Any], pub: Path, first: Path, speed: float = 300.0,
                    others: tuple[Path, ...] = ()) -> Any:
    """An embedded hub (SQLite, loopback): it trusts the demo's signing key, gets version 1.0.0
    of the quality model (``first``) and of every other model (``others``) published over its
    admin API and deploys each to the gateway's group; the agent syncs them from there (the
    config's entries of the other models lose their bundle from disk: None waits for the hub)."""
    try:
        from hub.server import HubServer
        from hub.storage import add_admin_token, add_gateway, open_db
    except ImportError:
        _say("[demo] hub extra not installed (pip install 'factory-edge-agent[hub]'): no hub")
        return None
    hub_dir = out / "hub"
    if hub_dir.exists():
        shutil.rmtree(hub_dir)
    (hub_dir / "data" / "trusted-keys").mkdir(parents=True)
    shutil.copy(pub, hub_dir / "data" / "trusted-keys" / "demo-signing.pub")
    engine = open_db(f"sqlite:///{hub_dir / 'hub.db'}")
    from hub.retrain import hub_key, set_policy

    hub_pub = hub_key(hub_dir / "data").with_suffix(".pub")  # the hub signs what it retrains
    for model in cfg.get("models") or [cfg["model"]]:
        model["trusted_keys"].append(str(hub_pub))
    set_policy(engine, "moulding-nok", demo_policy(speed))
    cfg["hub"] = {"url": "", "token": add_gateway(engine, cfg["gateway_id"], group=GROUP),
                  "upload_interval_s": 0.5, "poll_interval_s": 1.0, "report_interval_s": 1.0}
    hub = HubServer(engine, hub_dir / "data", evaluate_interval_s=0.5)
    hub.admin_token = add_admin_token(engine)  # type: ignore[attr-defined]
    await asyncio.to_thread(hub.start)
    cfg["hub"]["url"] = hub.url
    _say(f"[demo] hub on {hub.url} (SQLite {hub_dir / 'hub.db'}); the agent syncs models from it "
         "and uploads its outbox to it")
    deployed = []
    for bundle in (first, *others):
        manifest = json.loads((bundle / "manifest.json").read_text())
        name, version = manifest["name"], manifest["version"]
        await _admin(hub, "POST", "/api/v1/models", content=_tar(bundle))
        await _admin(hub, "POST", "/api/v1/deployments",
                     json={"model": name, "version": version, "to": f"group:{GROUP}"})
        for entry in cfg.get("models") or []:
            if entry.get("name") == name:
                entry["bundle"] = None
        deployed.append(f"{name} {version}")
    _say(f"[demo] published {' and '.join(deployed)} to the hub and deployed "
         f"{'them' if len(deployed) > 1 else 'it'} to group {GROUP}")
    return hub


async def roll_out_canary(hub: Any, bundle: Path, part: int) -> None:
    await _admin(hub, "POST", "/api/v1/models", content=_tar(bundle))
    await _admin(hub, "POST", "/api/v1/deployments",
                 json={"model": "moulding-nok", "version": "1.1.0", "to": f"group:{GROUP}",
                       "strategy": "canary", "canary_size": 1, "watch_s": 8.0})
    _say(f"[demo] part {part}: published moulding-nok 1.1.0 and deployed it as a canary "
         "(the hub promotes it after 8 s without regression)")


async def _admin(hub: Any, method: str, path: str, **kwargs: Any) -> Any:
    import httpx

    async with httpx.AsyncClient(base_url=hub.url, timeout=60,
                                 headers={"Authorization": f"Bearer {hub.admin_token}"}) as c:
        r = await c.request(method, path, **kwargs)
        r.raise_for_status()
        return r.json()


def _tar(bundle: Path) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(bundle, arcname=bundle.name)
    return buf.getvalue()


def model_cards(hub: Any, out: Path) -> None:
    from hub.modelcard import card_data, card_html
    from hub.registry import list_versions

    cards = out / "cards"
    cards.mkdir(exist_ok=True)
    for v in list_versions(hub.engine):
        (cards / f"{v['name']}-{v['version']}.html").write_text(
            card_html(card_data(hub.engine, v["name"], v["version"])))


async def drained(agent: Agent, within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        uploader = agent.uploader
        if uploader is not None and uploader.uploaded_records >= agent.records_written:
            return
        await asyncio.sleep(0.2)


def _short(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def version_holdout(hub: Any, version: str | None, name: str = "moulding-nok") -> dict[str, Any] | None:
    """The holdout figures the bundle builder wrote into a version's manifest (its card shows
    the same)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from hub.storage import ModelVersion

    if version is None:
        return None
    with Session(hub.engine) as s:
        manifest = s.scalars(select(ModelVersion.manifest).where(
            ModelVersion.name == name, ModelVersion.version == version)).first()
    return ((manifest or {}).get("metrics") or {}).get("holdout")


def _subject(model: str, version: str) -> str:
    return " ".join(x for x in (model, version) if x != "-") or "-"


def hub_figures(hub: Any, agent: Agent) -> dict[str, Any]:
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from hub.storage import HistoryEntry, Telemetry

    with Session(hub.engine) as s:
        rows = s.scalar(select(func.count()).select_from(Telemetry)) or 0
        items = s.scalar(select(func.sum(Telemetry.items))) or 0
        # with two models on the gateway, each line names its model
        history = [f"{_subject(h.model, h.version)} {h.event}{' on ' + h.gateway_id if h.gateway_id else ''}"
                   f"{': ' + _short(h.detail) if h.detail and h.event != 'published' else ''}"
                   for h in s.scalars(select(HistoryEntry).order_by(HistoryEntry.id))]
    stats = agent.outbox_stats
    return {"records_written_by_agent": agent.records_written, "records_at_hub": rows,
            "items_at_hub": items, "records_still_in_outbox": stats.depth if stats else None,
            "version_history": history}


