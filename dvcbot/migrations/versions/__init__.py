"""Alembic revisions, one file each, named ``<number>_<slug>.py`` (``dvcbot db revision`` writes them)."""
