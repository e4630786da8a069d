"""Help output shared by both command lines (edge-agent and edge-hub): every option shows its
default, nothing is cut to a narrow terminal, and sub-commands inherit the style."""

from __future__ import annotations

import argparse
from typing import Any


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows every option's default, and is never cut to a narrow terminal."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=100)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "(default" in text or not action.option_strings or \
                action.default in (None, argparse.SUPPRESS, False, []):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose sub-parsers (at any depth) use the same Formatter."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        kw.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kw)
