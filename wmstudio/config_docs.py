"""Render the configuration reference (docs/configuration.md) from the ``Settings`` model itself.

Usage: python -m wmstudio.config_docs [--write [PATH]] (default PATH: docs/configuration.md). A test checks that
the page lists every variable, so the documentation cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wmstudio.settings import PROJECT_ROOT, Settings


def env_name(field: str) -> str:
    return f"WMSTUDIO_{field.upper()}"


def config_table() -> str:
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    defaults: dict = {}  # earlier fields' defaults, for a default derived from them (registry_dir)
    for name, field in Settings.model_fields.items():
        default = defaults[name] = field.get_default(call_default_factory=True, validated_data=defaults)
        if isinstance(default, list):
            default = ",".join(default) or "(empty)"
        # The checkout first, then its parent: the same table whatever the checkout's folder is called.
        text = str(default).replace(str(PROJECT_ROOT), ".").replace(str(PROJECT_ROOT.parent), "..")
        lines.append(f"| `{env_name(name)}` | `{text or '(empty)'}` | {field.description or ''} |")
    return "\n".join(lines)


START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"
CONFIG_PAGE = PROJECT_ROOT / "docs" / "configuration.md"


def write_table(path: Path = CONFIG_PAGE) -> None:
    """Replace the table between the page's markers with the current one."""
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{config_table()}\n{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write_table(Path(sys.argv[2]) if len(sys.argv) > 2 else CONFIG_PAGE)
    else:
        print(config_table())
