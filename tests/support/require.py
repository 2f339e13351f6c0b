"""Real components the tests need: skip locally when one is missing, fail under CI."""

from __future__ import annotations

import os

import pytest


def require(component: str, available: bool, how: str) -> None:
    """Skip the test when ``component`` is missing, or fail it when ``CI=true``.

    ``how`` tells a person what to install or start.
    """
    if available:
        return
    message = f"{component} is not available: {how}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
