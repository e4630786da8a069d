"""The .deb: lintian finds no error; dpkg installs it as root here, the installed agent runs
(its whole runtime stack imports), remove keeps data and config, purge removes them."""

from __future__ import annotations

import contextlib
import fcntl
import grp
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
REQUIRED = bool(os.environ.get("EDGE_REQUIRE_DEB_TOOLS"))


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (apt-get install {tool})"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextlib.contextmanager
def machine_wide_lock() -> Iterator[None]:
    """The package is installed system-wide: two test runs on one machine (several worktrees, a
    CI run beside a developer's) must take turns, or one purges what the other is testing."""
    with open("/tmp/factory-edge-agent-deb-test.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def run(*cmd: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need("dpkg-deb")
    out = tmp_path_factory.mktemp("deb")
    result = run("bash", str(ROOT / "packaging/build-deb.sh"), str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    path = Path(result.stdout.strip().splitlines()[-1])
    assert path.name.startswith("factory-edge-agent_0.1.0_") and path.suffix == ".deb"
    return path


def test_lintian_reports_no_error(deb: Path) -> None:
    result = run(need("lintian"), str(deb))
    errors = [line for line in result.stdout.splitlines() if line.startswith("E:")]
    assert errors == [], "\n".join(errors)


def test_install_run_remove_purge(deb: Path, trained: dict[str, Path]) -> None:
    if os.geteuid() != 0:
        if REQUIRED:
            pytest.fail("the install test needs root")
        pytest.skip("the install test needs root (dpkg -i)")
    need("dpkg")
    with machine_wide_lock():
        install_run_remove_purge(deb, trained)


def install_run_remove_purge(deb: Path, trained: dict[str, Path]) -> None:
    run("dpkg", "--purge", "factory-edge-agent")  # a leftover from an interrupted run
    try:
        installed = run("dpkg", "-i", str(deb))
        assert installed.returncode == 0, installed.stdout + installed.stderr
        assert run("edge-agent", "--version").stdout.startswith("edge-agent 0.1.0")
        check = run("/usr/bin/edge-agent", "check-config", "/etc/edge-agent/agent.yaml")
        assert check.returncode == 0, check.stderr
        # the operator guide's install steps with the S7 profile, as written (the PLC side aside:
        # its certificate goes into the trust_dir the package made, which check-config wants)
        etc = Path("/etc/edge-agent")
        shutil.copy("/usr/share/factory-edge-agent/profiles/siemens-s7-1500.yaml", etc / "agent.yaml")
        made = run("/usr/bin/edge-agent", "opcua", "certs", "create", "--config", str(etc / "agent.yaml"))
        assert made.returncode == 0, made.stderr
        key = etc / "pki/client-key.pem"
        assert key.stat().st_mode & 0o777 == 0o640 and key.stat().st_gid == grp.getgrnam("edge-agent").gr_gid
        (etc / "credentials/opcua-password").write_text("the PLC password")
        (etc / "keys").mkdir()
        shutil.copy(trained["pub"], etc / "keys/hub.pub")
        steps = run("/usr/bin/edge-agent", "check-config", str(etc / "agent.yaml"))
        assert steps.returncode == 0, steps.stderr  # before the service ever ran
        shutil.rmtree(etc / "keys")  # ours, not the package's
        # the packaged runtime really works: verify and self-test a signed bundle with it
        verify = run("/usr/bin/edge-agent", "bundle", "verify", str(trained["bundle"]),
                     "--key", str(trained["pub"]))
        assert verify.returncode == 0 and "self-test passed" in verify.stdout, verify.stderr
        assert run("getent", "passwd", "edge-agent").returncode == 0
        state = Path("/var/lib/edge-agent")
        assert state.is_dir() and state.stat().st_mode & 0o777 == 0o750
        (state / "outbox.db").write_bytes(b"data that must survive a remove")
        assert run("dpkg", "--remove", "factory-edge-agent").returncode == 0
        assert (state / "outbox.db").exists() and Path("/etc/edge-agent/agent.yaml").exists()
        assert not Path("/opt/factory-edge-agent/venv/bin/edge-agent").exists()
    finally:
        purged = run("dpkg", "--purge", "factory-edge-agent")
    assert purged.returncode == 0
    assert not Path("/var/lib/edge-agent").exists() and not Path("/etc/edge-agent").exists()
