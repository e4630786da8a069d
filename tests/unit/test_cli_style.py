"""Both command lines behave like the tools people know: every option has help text, no
placeholder made from an internal name, every command has a handler, conflicting options exit 2
with the reason."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

import pytest

from agent.cli import main as agent_main
from agent.cli.parser import build_parser as agent_parser
from hub.cli import HANDLERS
from hub.cli.parser import build


def hub_parser() -> argparse.ArgumentParser:
    return build(HANDLERS)


def _walk(p: argparse.ArgumentParser, path: str, handler: object = None,
          ) -> Iterator[tuple[str, argparse.ArgumentParser, object]]:
    handler = p.get_default("handler") or handler  # a group's handler serves its actions
    yield path, p, handler
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _walk(child, f"{path} {name}", handler)


def _leaves(p: argparse.ArgumentParser) -> list[tuple[str, object]]:
    return [(path, handler) for path, q, handler in _walk(p, p.prog)
            if not any(isinstance(a, argparse._SubParsersAction) for a in q._actions)]


@pytest.mark.parametrize("build", [agent_parser, hub_parser], ids=["edge-agent", "edge-hub"])
def test_every_option_has_help_and_a_readable_placeholder(build) -> None:
    missing, placeholders = [], []
    for path, p, _ in _walk(build(), "cli"):
        for action in p._actions:
            if isinstance(action, (argparse._HelpAction, argparse._VersionAction,
                                   argparse._SubParsersAction)):
                continue
            if not (action.help or "").strip():
                missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
            # a placeholder argparse made from an internal dest (CONFIG_OPT for --config) is
            # not for people: an option's placeholder is its own name or a chosen metavar
            if action.option_strings and action.metavar is None and action.nargs != 0:
                own = {o.lstrip("-").replace("-", "_") for o in action.option_strings}
                if action.dest not in own and action.dest != argparse.SUPPRESS:
                    placeholders.append(f"{path} {action.option_strings[0]}: {action.dest.upper()}")
    assert not missing, f"options without help: {missing}"
    assert not placeholders, f"internal names shown as placeholders: {placeholders}"


@pytest.mark.parametrize("build", [agent_parser, hub_parser], ids=["edge-agent", "edge-hub"])
def test_every_command_names_its_handler(build) -> None:
    leaves = _leaves(build())
    assert len(leaves) >= 12
    without = [path for path, handler in leaves if handler is None]
    assert not without, f"commands that would fall through to some default: {without}"


def test_top_level_help_lists_every_command_uncut(capsys) -> None:
    with pytest.raises(SystemExit):
        agent_main(["--help"])
    out = capsys.readouterr().out
    for name in ("run", "check-config", "status", "models", "alarms", "bundle", "replay",
                 "audit", "opcua", "sim", "demo"):
        assert re.search(rf"^\s+{name}\s", out, re.M), name
    assert "|\n" not in out  # the old description was cut after a trailing '|'


def test_check_config_with_two_configs_is_refused(tmp_path, capsys) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("gateway_id: a\n")
    b.write_text("gateway_id: b\n")
    assert agent_main(["check-config", str(a), "--config", str(b)]) == 2
    err = capsys.readouterr().err
    assert "two configs given" in err and str(a) in err and str(b) in err


def test_agent_options_show_their_defaults(capsys) -> None:
    with pytest.raises(SystemExit):
        agent_main(["bundle", "build", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 1.0)" in out and "(default: 500)" in out
