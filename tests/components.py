"""Real components the suite drives (Label Studio, PostgreSQL, Chromium): skip or fail when absent.

On a developer's machine a missing component skips its tests with a line saying how to get it.
Where the component is supposed to be there (``make test`` and CI set
``WMSTUDIO_REQUIRE_COMPONENTS=1``), a skip would hide that those tests never ran, so it fails.
Every such skip goes through :func:`missing_component` so the rule lives in one place.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

REQUIRE_ENV = "WMSTUDIO_REQUIRE_COMPONENTS"


def components_required() -> bool:
    """True when a missing real component must fail its tests instead of skipping them."""
    return os.environ.get(REQUIRE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def missing_component(component: str, reason: str) -> NoReturn:
    """Skip the test (or fail it under ``WMSTUDIO_REQUIRE_COMPONENTS=1``) because ``component`` is absent."""
    message = f"{component} unavailable: {reason}"
    if components_required():
        pytest.fail(f"{message} ({REQUIRE_ENV}=1: make test must provide it)", pytrace=False)
    pytest.skip(message)
