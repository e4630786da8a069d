"""edge-hub's command line: options after the command (the documented contract), the
environment, conflicting options refused with exit 2 and the reason, complete help; named admin
tokens (create, list, revoke; a revoked token refused; the audit trail names the holder); and
publish refusing what it must not accept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from agent.models.bundle import sign_bundle, write_manifest
from hub.cli import main as hub_main
from hub.server import HubServer
from hub.storage import HistoryEntry, open_db


def run(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "hub", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_options_after_the_command_and_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 'a.db'}"
    assert hub_main(["gateways", "add", "line-1", "--db", db, "--data", str(tmp_path / "d")]) == 0
    assert hub_main(["--db", db, "gateways", "list"]) == 0  # before the command still works
    assert "line-1" in capsys.readouterr().out
    env_db = f"sqlite:///{tmp_path / 'env.db'}"
    r = run("gateways", "add", "line-9", env={"EDGE_HUB_DB": env_db, "EDGE_HUB_DATA": str(tmp_path / "e")})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "env.db").exists() and not (tmp_path / "hub.db").exists()
    r = run("gateways", "list", "--db", db, env={"EDGE_HUB_DB": env_db})  # the command line wins
    assert "line-1" in r.stdout and "line-9" not in r.stdout


@pytest.mark.parametrize(
    "argv, reason",
    [
        (["--db", "sqlite:///a.db", "gateways", "list", "--db", "sqlite:///b.db"], "--db given twice"),
        (["gateways", "group", "gw", "press", "--none"], "not both"),
        (["gateways", "group", "gw"], "give a GROUP or --none"),
        (
            ["deploy", "m", "1", "--to", "gw", "--canary-size", "3"],
            "--canary-size applies to --strategy canary",
        ),
        (
            ["deploy", "m", "1", "--to", "gw", "--strategy", "canary", "--min-labels", "5"],
            "--min-labels applies",
        ),
        (["serve", "--tls-cert", "c.pem"], "--tls-cert and --tls-key go together"),
        (["deploy", "m", "1", "--to", "gw", "--strategy", "canary", "--watch", "inf"], "--watch"),
        (
            ["deploy", "m", "1", "--to", "gw", "--strategy", "shadow", "--min-labels", str(1 << 70)],
            "--min-labels",
        ),
    ],
)
def test_conflicting_or_bad_options_exit_2_with_the_reason(
    argv: list[str], reason: str, tmp_path: Path
) -> None:
    r = run(*argv, "--db", f"sqlite:///{tmp_path / 'x.db'}") if "--db" not in argv else run(*argv)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert reason in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_help_is_complete() -> None:
    top = run("--help").stdout
    for command in (
        "serve",
        "limits",
        "gateways",
        "tokens",
        "publish",
        "models",
        "deploy",
        "rollback",
        "config",
        "policy",
        "retrain",
        "approve",
        "reproduce",
        "card",
        "audit",
        "deployments",
        "history",
        "EDGE_HUB_DB",
        "EDGE_HUB_DATA",
    ):
        assert command in top, command
    serve = run("serve", "--help").stdout
    assert "(default: 8080)" in serve and "(default: 127.0.0.1)" in serve and "--limits FILE" in serve
    assert "CONFIG_OPT" not in serve
    r = run("nonsense")
    assert r.returncode == 2 and "invalid choice" in r.stderr  # nothing falls through to a default
    r = run("gateways")
    assert r.returncode == 2 and "ACTION" in r.stderr


def test_bad_gateway_ids_are_refused_by_gateways_add(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'g.db'}"
    for bad in ("", "line\n7", "../etc", "group:press", "a b", "x" * 200):
        r = run("gateways", "add", bad, "--db", db)
        assert r.returncode == 2 and "gateway id" in r.stderr and "Traceback" not in r.stderr, (bad, r.stderr)
    assert run("gateways", "add", "line-7", "--group", "a/b", "--db", db).returncode == 2


def test_named_admin_tokens(
    tmp_path: Path, trained: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path / 't.db'}"
    common = ["--db", db, "--data", str(tmp_path / "data")]
    assert hub_main(["tokens", "create", "--name", "alice", *common]) == 0
    alice = capsys.readouterr().out.strip()
    assert hub_main(["tokens", "create", "--name", "bob", *common]) == 0
    bob = capsys.readouterr().out.strip()
    assert hub_main(["tokens", "create", "--name", "alice", *common]) == 2  # names are unique
    assert "in use" in capsys.readouterr().err
    assert hub_main(["tokens", "create", "--name", "bad name\n", *common]) == 2
    assert hub_main(["gateways", "add", "gw", "--group", "press", *common]) == 0
    capsys.readouterr()
    engine = open_db(db)
    (tmp_path / "data" / "trusted-keys").mkdir(parents=True)
    shutil.copy(trained["pub"], tmp_path / "data" / "trusted-keys" / "release.pub")
    server = HubServer(engine, tmp_path / "data", token_cache_s=0.5)
    server.start()
    try:
        archive = tmp_path / "b.tar"
        with tarfile.open(archive, "w") as tar:
            tar.add(trained["bundle"], arcname="bundle")
        with httpx.Client(base_url=server.url, timeout=30) as c:
            up = c.post(
                "/api/v1/models", content=archive.read_bytes(), headers={"Authorization": f"Bearer {alice}"}
            )
            assert up.status_code == 201, up.text
            dep = c.post(
                "/api/v1/deployments",
                headers={"Authorization": f"Bearer {bob}"},
                json={"model": "moulding-nok", "version": "1.0.0", "to": "press"},
            )
            assert dep.status_code == 201, dep.text
            assert hub_main(["tokens", "revoke", "bob", "--by", "carol", *common]) == 0
            time.sleep(0.7)  # the token cache time of this hub
            assert c.get("/api/v1/history", headers={"Authorization": f"Bearer {bob}"}).status_code == 401
            assert c.get("/api/v1/history", headers={"Authorization": f"Bearer {alice}"}).status_code == 200
    finally:
        server.stop()
    assert hub_main(["rollback", "moulding-nok", "--to", "1.0.0", "--by", "dave", *common]) == 0
    capsys.readouterr()
    assert hub_main(["tokens", "list", "--json", *common]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["bob"]["revoked"] and not listed["alice"]["revoked"] and alice not in json.dumps(listed)
    assert hub_main(["tokens", "revoke", "nobody", *common]) == 2
    with Session(engine) as s:
        actors = {(h.event, h.actor) for h in s.scalars(select(HistoryEntry))}
    engine.dispose()
    assert ("published", "token:alice") in actors
    assert ("deployed", "token:bob") in actors
    assert ("token_revoked", "cli:carol") in actors
    assert ("deployed", "cli:dave") in actors  # the rollback's deployment, by the operator


def _resigned(src: Path, out: Path, key: Path, change: object) -> Path:
    shutil.copytree(src, out)
    (out / "manifest.sig").unlink(missing_ok=True)
    manifest = json.loads((out / "manifest.json").read_text())
    change(out, manifest)  # type: ignore[operator]
    write_manifest(out, manifest)
    sign_bundle(out, key)
    return out


def test_publish_refuses_what_the_fleet_must_not_get(
    tmp_path: Path, trained: dict[str, Path], versions: dict[str, Path]
) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    common = ["--db", db, "--data", str(tmp_path / "data"), "--trusted-key", str(trained["pub"])]

    def garbage_model(out: Path, manifest: dict[str, object]) -> None:
        (out / "model.onnx").write_bytes(b"\x08\x01garbage, not a protobuf" * 50)

    garbage = _resigned(trained["bundle"], tmp_path / "garbage", trained["key"], garbage_model)
    unlisted = tmp_path / "unlisted"
    shutil.copytree(trained["bundle"], unlisted)
    (unlisted / "payload.sh").write_text("#!/bin/sh\nrm -rf /\n")  # signed bundle + a rider
    deep = tmp_path / "deep"
    shutil.copytree(trained["bundle"], deep)
    (deep / "manifest.json").write_text('{"a": ' + "[" * 5000 + "]" * 5000 + "}")
    cases = {
        garbage: "does not load",
        versions["9.0.0"]: "self-test failed",
        unlisted: "payload.sh is not listed in the manifest",
        deep: "nested",
    }
    for bundle, reason in cases.items():
        r = run("publish", str(bundle), *common)
        assert r.returncode == 2 and reason in r.stderr and "Traceback" not in r.stderr, (bundle, r.stderr)
    assert run("publish", str(trained["bundle"]), *common).returncode == 0
