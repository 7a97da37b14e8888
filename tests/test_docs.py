"""The docs document what the code does: every setting, the two quick-start commands."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from wmstudio.config_docs import CONFIG_PAGE, env_name
from wmstudio.settings import Settings

pytestmark = pytest.mark.unit


def test_configuration_page_lists_every_setting():
    page = CONFIG_PAGE.read_text()
    missing = [env_name(field) for field in Settings.model_fields if env_name(field) not in page]
    assert not missing, f"run `python -m wmstudio.config_docs --write`; missing: {missing}"


def test_readme_gives_the_two_commands_and_ci_runs_one():
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_settings_read_from_environment(monkeypatch):
    monkeypatch.setenv("WMSTUDIO_API_KEYS", "a, b,,c")
    monkeypatch.setenv("WMSTUDIO_MAX_BATCH_FILES", "3")
    settings = Settings()
    assert settings.api_keys == ["a", "b", "c"] and settings.max_batch_files == 3
