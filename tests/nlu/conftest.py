"""Fixtures for the pure NLU tests (no Rasa import; run on Python 3.10 and 3.11)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `pytest` without `python -m` from another folder
    sys.path.insert(0, str(REPO_ROOT))

from nlu.normalize import load_abbreviations  # noqa: E402

ABBREVIATIONS_FILE = REPO_ROOT / "data" / "lexicon" / "abbreviations.yml"


@pytest.fixture(scope="session")
def abbreviations() -> dict:
    """The project's abbreviation dictionary."""
    return load_abbreviations(str(ABBREVIATIONS_FILE))
