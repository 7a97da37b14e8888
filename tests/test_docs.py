"""The docs describe what the code does and stay readable: sizes, links, code blocks, commands, settings.

README.md is the front page (at most 200 lines), REPORT.md a brief report (at most 1,500 words of
prose), and the reference lives under docs/. These checks fail when a page grows past its budget,
a relative link or anchor breaks, a Python block stops parsing, or a setting, CLI command or API
route is missing from its page.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer

from tests.conftest import ROOT
from wmstudio.config_docs import CONFIG_PAGE, END, START, config_table, env_name
from wmstudio.settings import Settings

pytestmark = pytest.mark.unit

README_MAX_LINES = 200
REPORT_MAX_PROSE_WORDS = 1500
DOC_PAGES = [ROOT / "README.md", ROOT / "REPORT.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(r"^(```|~~~)(?P<info>[^\n]*)\n(?P<body>.*?)^\1[ \t]*$", re.M | re.S)
COMMENT = re.compile(r"<!--.*?-->", re.S)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _without_code(text: str) -> str:
    """The Markdown with fenced blocks, inline code and HTML comments blanked out."""
    return CODE_SPAN.sub(" ", FENCE.sub(" ", COMMENT.sub(" ", text)))


def prose_words(markdown: str) -> int:
    """Words of prose: tables, fenced code, HTML comments and image lines do not count."""
    text = FENCE.sub(" ", COMMENT.sub(" ", markdown))
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(("|", "!["))]
    return sum(1 for word in " ".join(lines).split() if re.search(r"\w", word))


def anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    result = set()
    for line in FENCE.sub(" ", markdown).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(page: Path) -> list[str]:
    targets = (m.group("target") for m in LINK.finditer(_without_code(page.read_text())))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # http:, mailto:, ...


def test_doc_pages_found():
    names = {page.relative_to(ROOT).as_posix() for page in DOC_PAGES}
    assert {"README.md", "REPORT.md", "docs/configuration.md", "docs/experiments.md"} <= names


def test_readme_is_a_front_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move reference text to docs/"


def test_report_is_brief():
    words = prose_words((ROOT / "REPORT.md").read_text())
    assert words <= REPORT_MAX_PROSE_WORDS, f"REPORT.md has {words} words of prose (tables and code excluded)"


def test_prose_count_skips_tables_code_and_comments():
    text = "# Title here\n\nOne two three.\n\n| a | b |\n| --- | --- |\n\n```bash\nx y z\n```\n<!-- LEAD: w v -->\n"
    assert prose_words(text) == 5


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(page: Path):
    broken = []
    for target in relative_links(page):
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved.read_text()):
            broken.append(f"{target} (no heading #{fragment})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links {broken}"


def test_anchor_and_link_parsing():
    assert anchors("## 3. Results\n## The API\n## The API\n") == {"3-results", "the-api", "the-api-1"}
    page = "[a](docs/x.md#y) ![b](pic.png) [c](https://e.org) `[d](not-a-link.md)`"
    targets = [m.group("target") for m in LINK.finditer(_without_code(page))]
    assert targets == ["docs/x.md#y", "pic.png", "https://e.org"]


@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_python_blocks_parse(page: Path):
    for match in FENCE.finditer(page.read_text()):
        if match.group("info").strip() in ("python", "py"):
            ast.parse(match.group("body"), filename=str(page))


def test_configuration_page_is_current():
    text = CONFIG_PAGE.read_text()
    missing = [env_name(field) for field in Settings.model_fields if env_name(field) not in text]
    table = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert not missing and table == config_table(), (
        f"run `python -m wmstudio.config_docs --write` to refresh {CONFIG_PAGE.relative_to(ROOT)}; missing: {missing}"
    )


def test_readme_gives_the_two_commands_and_ci_runs_one():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_cli_page_names_every_command():
    from cli.main import app

    page = (ROOT / "docs" / "cli.md").read_text()
    missing = []
    for name, command in typer.main.get_command(app).commands.items():
        if f"wmstudio {name}" not in page:
            missing.append(name)
        lines = [line for line in page.splitlines() if f"wmstudio {name} " in line]
        missing += [f"{name} {sub}" for sub in getattr(command, "commands", {}) if not any(sub in li for li in lines)]
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_readme_lists_every_api_route():
    from api.main import create_app

    readme = (ROOT / "README.md").read_text()
    paths = create_app(Settings()).openapi()["paths"]
    missing = [path for path in paths if not re.search(rf"`[A-Z]+ {re.escape(path)}[`?]", readme)]
    assert not missing, f"README.md's API table lacks {missing}"


def test_settings_read_from_environment(monkeypatch):
    monkeypatch.setenv("WMSTUDIO_API_KEYS", "a, b,,c")
    monkeypatch.setenv("WMSTUDIO_MAX_BATCH_FILES", "3")
    settings = Settings()
    assert settings.api_keys == ["a", "b", "c"] and settings.max_batch_files == 3
