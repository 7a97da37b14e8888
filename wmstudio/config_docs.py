"""Render the configuration reference (README table) from the ``Settings`` model itself.

Usage: python -m wmstudio.config_docs [--write README.md] — a test checks the README lists every variable, so the
documentation cannot drift from the code.
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
        text = str(default).replace(str(PROJECT_ROOT), ".").replace(str(PROJECT_ROOT.parent), "..")
        lines.append(f"| `{env_name(name)}` | `{text or '(empty)'}` | {field.description or ''} |")
    return "\n".join(lines)


START, END = "<!-- config-table:start -->", "<!-- config-table:end -->"


def write_readme(path: Path) -> None:
    """Replace the table between the README's markers with the current one."""
    text = path.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{START}\n{config_table()}\n{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--write"]:
        write_readme(Path(sys.argv[2]) if len(sys.argv) > 2 else PROJECT_ROOT / "README.md")
    else:
        print(config_table())
