"""edge-agent alarms list | ack [ID] | shelve ID --for 8h --by NAME --reason TEXT | unshelve ID.

The commands read the incidents from the agent's status file and hand requests to the running
agent through its state directory (applied within a few seconds; by a stopped agent when it
starts). Bad input (an unknown incident, a duration like ``8x``) exits 2 with the fix.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

MAX_SHELVE_S = 7 * 24 * 3600
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_parser(sub: Any, default_config: Path) -> None:
    alarms = sub.add_parser("alarms", help="model health incidents: list, acknowledge, shelve")
    alarms.set_defaults(handler=run)
    asub = alarms.add_subparsers(dest="alarms_command", required=True, metavar="ACTION",
                                 title="actions")
    alist = asub.add_parser("list", help="open incidents (and the latest closed ones with --all)")
    alist.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                       help="the agent's YAML config")
    alist.add_argument("--json", action="store_true", help="incidents as JSON")
    alist.add_argument("--all", action="store_true", help="also the latest closed incidents")
    aack = asub.add_parser("ack", help="acknowledge an incident (all open ones without ID)")
    aack.add_argument("incident", nargs="?", help="incident id (see `alarms list`)")
    aack.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                      help="the agent's YAML config")
    aack.add_argument("--by", default="operator", help="who acknowledges (for the record)")
    shelve = asub.add_parser("shelve", help="silence an incident for a while (audited, it expires)")
    shelve.add_argument("incident", help="incident id (see `alarms list`)")
    shelve.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                        help="how long: 30m, 8h, 1d (at most 7d)")
    shelve.add_argument("--by", required=True, help="who shelves it")
    shelve.add_argument("--reason", required=True, help="why (kept in the audit log)")
    shelve.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                        help="the agent's YAML config")
    unshelve = asub.add_parser("unshelve", help="end a shelving before it expires")
    unshelve.add_argument("incident", help="incident id")
    unshelve.add_argument("--by", default="operator", help="who ends it (for the record)")
    unshelve.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                          help="the agent's YAML config")


def parse_duration(text: str) -> float:
    """'90s', '30m', '8h', '1d', '1h30m' -> seconds; anything else is bad input."""
    cleaned = text.strip().lower()
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", cleaned)
    if not parts or "".join(n + u for n, u in parts) != cleaned:
        raise ConfigError([f"--for: '{text}' is not a duration; write a number and a unit: "
                           "90s, 30m, 8h, 1d (or 1h30m)"])
    seconds = sum(float(n) * UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError([f"--for: '{text}' is no time at all; give how long, e.g. --for 8h"])
    if seconds > MAX_SHELVE_S:
        raise ConfigError([f"--for: '{text}' is longer than shelving allows (7d): shelving is always "
                           "time-limited; shelve again when it expires"])
    return seconds


def model_monitors(status: dict[str, Any]) -> list[Any]:
    """Each model's monitor figures: status.json's `models` (by name), or the one model at the
    top level that an agent of the single-model release wrote."""
    models = status.get("models")
    if isinstance(models, dict) and models:
        return [m.get("monitor") for m in models.values() if isinstance(m, dict)]
    return [status.get("monitor")]


def open_incidents(status: dict[str, Any], closed: bool = False) -> list[dict[str, Any]]:
    """Incidents from status.json: of the model's monitor, or of every model's."""
    monitors = model_monitors(status)
    out: list[dict[str, Any]] = []
    for mon in monitors:
        figures = (mon or {}).get("incidents") or {}
        out += figures.get("open") or []
        if closed:
            out += figures.get("recent") or []
    return out


def _find(incidents: list[dict[str, Any]], wanted: str) -> dict[str, Any]:
    hits = [i for i in incidents if i["id"] == wanted] or (
        [i for i in incidents if i["id"].startswith(wanted)] if len(wanted) >= 4 else [])
    if len(hits) == 1:
        return hits[0]
    known = ", ".join(f"{i['id']} ({i['level'].upper()} {'/'.join(i['families'])})" for i in incidents)
    if len(hits) > 1:
        raise ConfigError([f"incident '{wanted}' is ambiguous ({', '.join(h['id'] for h in hits)}); "
                           "give more of its id"])
    raise ConfigError([f"incident '{wanted}': no such open incident; "
                       + (f"open: {known}" if known else "there are no open incidents")
                       + " (see `edge-agent alarms list`)"])


def run(args: argparse.Namespace) -> int:
    from agent.config import load_config
    from agent.monitor.watch import write_request
    from agent.service.agent import read_status

    cfg = load_config(args.config)
    status = read_status(cfg.state_dir) or {}
    running = bool(status) and time.time() - float(status.get("updated", 0)) < 10
    when = "the running agent applies it within a few seconds" if running else (
        "the agent is not running: it applies it when it starts")
    if args.alarms_command == "list":
        return _list(open_incidents(status, closed=args.all), status, args.json)
    incidents = open_incidents(status)
    if args.alarms_command == "ack":
        targets = [_find(incidents, args.incident)] if args.incident else incidents
        if not targets:
            print("no open incidents to acknowledge")
            return 0
        for inc in targets:
            write_request(cfg.state_dir, "ack", inc["id"], inc["model"], args.by)
        print(f"acknowledgement of {', '.join(i['id'] for i in targets)} by {args.by} handed to the "
              f"agent ({when})")
        return 0
    inc = _find(incidents, args.incident)
    if args.alarms_command == "shelve":
        seconds = parse_duration(args.duration)
        if not args.reason.strip() or not args.by.strip():
            raise ConfigError(["--by and --reason must not be empty: shelving is audited"])
        until = time.time() + seconds
        write_request(cfg.state_dir, "shelve", inc["id"], inc["model"], args.by, args.reason, until)
        print(f"incident {inc['id']} shelved by {args.by} until "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(until))} ({when})")
        return 0
    write_request(cfg.state_dir, "unshelve", inc["id"], inc["model"], args.by)
    print(f"unshelving of incident {inc['id']} by {args.by} handed to the agent ({when})")
    return 0


def _list(incidents: list[dict[str, Any]], status: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(incidents, indent=1, default=str))
        return 0
    if not incidents:
        print("no open incidents")
    for inc in incidents:
        state = inc["state"].upper()
        if inc.get("acknowledged_by"):
            state += f", acknowledged by {inc['acknowledged_by']}"
        if inc.get("shelved_until"):
            state += (f", SHELVED by {inc['shelved_by']} until "
                      f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(inc['shelved_until']))}")
        start = inc.get("start_index")
        print(f"{inc['id']}  {inc['level'].upper():7} {state}")
        print(f"          {inc['model']} {inc['model_version']}: {', '.join(inc['detectors'])}"
              + (f"; features {', '.join(inc['features'])}" if inc["features"] else ""))
        print(f"          raised at sample {inc['opened_index']}, change estimated from sample "
              f"{start if start is not None else '?'} ({inc.get('start_from')}); "
              f"{inc['notifications']} notification(s)"
              + (f"; grouped: {', '.join(inc['consequential'])}" if inc.get("consequential") else ""))
    for mon in model_monitors(status):
        figures = (mon or {}).get("incidents") or {}
        if figures.get("held_back_total"):
            print(f"flood guard: {figures['held_back_total']} notification(s) held back "
                  f"(at most {figures['flood_limit']} per {figures['flood_window_s'] / 60:g} min)")
    return 0
