#!/usr/bin/env python3
"""Generate the configuration reference table of docs/admin.md from ``relay.config.describe()``.

    scripts/gen-config-doc.py            print the table
    scripts/gen-config-doc.py --write    replace the table in docs/admin.md (between the markers)
    scripts/gen-config-doc.py --check    exit 1 if docs/admin.md's table differs from describe()

The table lives between ``<!-- config-table:start -->`` and ``<!-- config-table:end -->``;
tests/unit/test_config_doc.py fails when it is out of date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "admin.md"
START = "<!-- config-table:start -->"
END = "<!-- config-table:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_table() -> str:
    """The Markdown table, one row per setting, in the order of :class:`relay.config.Settings`."""
    sys.path.insert(0, str(ROOT))
    from relay.config import describe

    rows = ["| setting | environment | default | description |", "|---|---|---|---|"]
    for name, env, default, doc in describe():
        shown_env = f"`{env}`" if env else "(TOML only)"
        shown_default = f"`{_cell(default)}`" if default else "(empty)"
        rows.append(f"| `{name}` | {shown_env} | {shown_default} | {_cell(doc)} |")
    return "\n".join(rows) + "\n"


def current_table(text: str) -> str:
    """The table now in ``text`` (between the markers); ValueError if the markers are missing."""
    try:
        start = text.index(START) + len(START)
        end = text.index(END, start)
    except ValueError:
        raise ValueError(f"{DOC}: markers {START} ... {END} not found") from None
    return text[start:end].strip("\n") + "\n"


def replace_table(text: str, table: str) -> str:
    start = text.index(START) + len(START)
    end = text.index(END, start)
    return text[:start] + "\n" + table + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="rewrite the table in docs/admin.md")
    group.add_argument("--check", action="store_true", help="exit 1 if docs/admin.md is out of date")
    args = parser.parse_args(argv)
    table = render_table()
    if not (args.write or args.check):
        sys.stdout.write(table)
        return 0
    text = DOC.read_text(encoding="utf-8")
    if args.check:
        if current_table(text) != table:
            print(f"{DOC} is out of date: run scripts/gen-config-doc.py --write", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(replace_table(text, table), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
