"""Fixtures for the Rasa component tests (run with .venv-rasa/bin/python -m pytest tests/rasa).

Under the project venv (no Rasa) the whole folder is skipped at collection.
"""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

FIXTURES = Path(__file__).resolve().parent / "fixtures"

if importlib.util.find_spec("rasa") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture
def model_storage(tmp_path: Path) -> Any:
    """An empty model storage in a temporary folder."""
    from rasa.engine.storage.local_model_storage import LocalModelStorage

    path = tmp_path / "storage"
    path.mkdir()
    return LocalModelStorage(path)


@pytest.fixture
def execution_context() -> Any:
    """A context like the one Rasa gives components during training."""
    from rasa.engine.graph import ExecutionContext, GraphSchema

    return ExecutionContext(GraphSchema({}), uuid.uuid4().hex)


@pytest.fixture
def resource() -> Any:
    """A fresh resource name."""
    from rasa.engine.storage.resource import Resource

    return Resource(f"component_{uuid.uuid4().hex[:8]}")


@pytest.fixture
def nlu_data() -> Callable[[str], Any]:
    """Parses Rasa YAML NLU data from a string into TrainingData."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    def parse(text: str) -> Any:
        return RasaYAMLReader().reads(text)

    return parse
