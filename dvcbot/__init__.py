"""Shared infrastructure of dvcbot: settings, database, command line, local process supervisor."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
