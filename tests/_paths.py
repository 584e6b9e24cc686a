"""Where the shared test data lives (never copied into the repo): ``<repo>/../shared``."""
from __future__ import annotations

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def require_shared(relpath: str) -> Path:
    """The path of ``SHARED / relpath``; skips the test with a clear message when it is not there."""
    path = SHARED / relpath
    if not path.exists():
        pytest.skip(f"shared test data missing: {path} (expected the shared folder beside the repo)")
    return path
