"""Shared test fixtures: where the real test data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OGASEARCH_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def oga_pages() -> Path:
    """Real saved OpenGameArt HTML (../shared/oga_pages)."""
    path = SHARED / "oga_pages"
    if not path.is_dir():
        pytest.skip(f"real OGA pages not found at {path} (set OGASEARCH_SHARED)")
    return path


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The pixel-art corpus (../shared/corpus)."""
    path = SHARED / "corpus"
    if not (path / "labels.csv").is_file():
        pytest.skip(f"pixel-art corpus not found at {path} (set OGASEARCH_SHARED)")
    return path
