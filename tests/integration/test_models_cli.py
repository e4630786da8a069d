"""The local operator's commands on a running agent, without any hub (an air-gapped plant):
models import from a USB stick, models list, models rollback; and a crash loop during a
watch that rolls the new version back at the next start."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from agent.cli import main
from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import COUNTER_TAG
from tests.helpers.running import base_config, opcua_source, running_agent, wait_for
from tests.helpers.versions import tar_of


async def test_import_list_rollback_offline(tmp_path: Path, trained: dict[str, Path],
                                            versions: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg = base_config(tmp_path / "state", [opcua_source(port, line.ns)],
                          features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
                          model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])],
                                 "rollback": {"watch_s": 60}})
        config_file = tmp_path / "agent.yaml"
        config_file.write_text(yaml.safe_dump(cfg))
        usb = tar_of(versions["1.1.0"], tmp_path / "moulding-nok-1.1.0.tar")
        async with running_agent(cfg) as agent:
            assert agent.model is not None and agent.model.version == "1.0.0"
            assert main(["models", "import", str(usb), "--config", str(config_file)]) == 0
            assert "verified moulding-nok 1.1.0" in capsys.readouterr().out
            await wait_for(lambda: agent.model is not None and agent.model.version == "1.1.0", 10,
                           "imported version active")
            assert agent.lifecycle is not None and agent.lifecycle.incumbent is not None  # watched

            assert main(["models", "list", "--config", str(config_file)]) == 0
            listing = capsys.readouterr().out
            assert "1.1.0" in listing and "active" in listing and "previous" in listing

            tampered = tmp_path / "tampered"
            shutil.copytree(versions["1.1.0"], tampered)
            with (tampered / "model.onnx").open("ab") as fh:
                fh.write(b"\0")
            assert main(["models", "import", str(tampered), "--config", str(config_file)]) == 2
            assert "does not match its sha256" in capsys.readouterr().err
            assert main(["models", "rollback", "7.7.7", "--config", str(config_file)]) == 2
            assert "not installed" in capsys.readouterr().err

            assert main(["models", "rollback", "--config", str(config_file)]) == 0
            assert "handed to the agent" in capsys.readouterr().out
            await wait_for(lambda: agent.model is not None and agent.model.version == "1.0.0", 10,
                           "operator rollback")
            assert main(["models", "list", "--json", "--config", str(config_file)]) == 0
            doc = json.loads(capsys.readouterr().out)
            v11 = next(v for v in doc["versions"] if v["version"] == "1.1.0")
            assert "rolled back by the operator" in (v11["rejected"] or "")

            # import it again: an explicit operator choice overrides the rejection
            assert main(["models", "import", str(usb), "--config", str(config_file)]) == 0
            await wait_for(lambda: agent.model is not None and agent.model.version == "1.1.0", 10,
                           "re-imported version active")

        # a clean restart keeps the remembered version (not the one named in the config) and the watch
        async with running_agent(cfg) as again:
            assert again.model is not None and again.model.version == "1.1.0"
            assert again.lifecycle is not None and again.lifecycle.incumbent is not None

        # the agent dies during the watch (no clean shutdown): at the next start it rolls back
        state_file = tmp_path / "state" / "models" / "moulding-nok" / "state.json"  # per model
        state = json.loads(state_file.read_text())
        assert state["history"][-1]["event"] == "activated" and state["history"][-1]["boots"] == 0
        state["history"][-1]["boots"] = 1  # as a crash after the last start leaves it
        state_file.write_text(json.dumps(state))
        async with running_agent(cfg) as third:
            assert third.model is not None and third.model.version == "1.0.0"
            assert third.store is not None
            assert "restarted 2 times" in third.store.state.rejected[
                next(s for s, r in third.store.state.rejected.items() if r["version"] == "1.1.0")]["reason"]
