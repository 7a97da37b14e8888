"""A missing real component skips its tests, except where ``make test`` must provide it: then it fails."""

from __future__ import annotations

import pytest

from tests.components import REQUIRE_ENV, missing_component

pytestmark = pytest.mark.unit


def test_missing_component_skips_by_default(monkeypatch):
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium unavailable: not installed"):
        missing_component("Chromium", "not installed")


@pytest.mark.parametrize("value", ["1", "true"])
def test_missing_component_fails_when_components_are_required(monkeypatch, value):
    monkeypatch.setenv(REQUIRE_ENV, value)
    with pytest.raises(pytest.fail.Exception, match="PostgreSQL unavailable: no initdb"):
        missing_component("PostgreSQL", "no initdb")


def test_zero_means_not_required(monkeypatch):
    monkeypatch.setenv(REQUIRE_ENV, "0")
    with pytest.raises(pytest.skip.Exception):
        missing_component("Label Studio", "no venv")
