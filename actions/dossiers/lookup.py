"""The verified look-up: limits, the source, the audit, and one timing class for every answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from actions.common import db_session
from actions.dossiers import audit, limits
from actions.dossiers.api_source import ApiSource
from actions.dossiers.settings import DossierSettings, get_dossier_settings
from actions.dossiers.sources import ChainSource, DossierView, RegisterSource, SourceUnavailable, StatusSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LookupResult:
    """How a look-up ended: ``verified`` (with the dossier), ``failed``, ``locked`` or ``unavailable``."""

    outcome: str
    view: DossierView | None = None


@lru_cache(maxsize=1)
def default_source() -> StatusSource:
    """The register, followed by the external API when ``DVCBOT_DOSSIER_API_URL`` is set (one per process)."""
    settings = get_dossier_settings()
    own = RegisterSource(db_session)
    return ChainSource([own, ApiSource(settings)]) if settings.api_url else own


async def verified_lookup(source: StatusSource, sessions: Callable[[], Session], settings: DossierSettings,
                          sender: str, code: str, last4: str) -> LookupResult:
    """Look ``code`` up for ``sender``, who gave ``last4`` as proof.

    A locked sender or code is refused before any source is asked. Otherwise the source is asked and every
    outcome is audited; the answer is then held back until ``min_answer_seconds`` have passed, so that a wrong
    code, wrong digits and a success cannot be told apart by their timing. The failure that uses up a limit is
    answered as ``locked`` straight away. Without a working database (limits, audit) nothing is looked up or
    shown: the answer is ``unavailable``.
    """
    try:
        with sessions() as session:
            if limits.locked(session, settings, sender, code):
                audit.record(session, sender, code, "locked")
                session.commit()
                log.info("dossier look-up refused: locked")
                return LookupResult("locked")
    except SQLAlchemyError as exc:  # without limits and audit there is no look-up
        log.warning("dossier look-up impossible, database unavailable: %s", type(exc).__name__)
        return LookupResult("unavailable")
    started = time.monotonic()
    view: DossierView | None = None
    try:
        view = await source.lookup(code, last4)
        outcome = "verified" if view is not None else "failed"
    except SourceUnavailable as exc:
        log.warning("dossier source unavailable: %s", exc)
        outcome = "unavailable"
    answer = outcome
    try:
        with sessions() as session:
            if outcome == "failed":
                limits.record_failure(session, sender, code)
            audit.record(session, sender, code, outcome)
            session.commit()
            if outcome == "failed" and limits.locked(session, settings, sender, code):
                answer = "locked"
    except SQLAlchemyError as exc:  # an answer that was not audited is not given
        log.warning("dossier look-up not audited, database unavailable: %s", type(exc).__name__)
        answer, view = "unavailable", None
    log.info("dossier look-up: %s", outcome)
    await asyncio.sleep(max(0.0, settings.min_answer_seconds - (time.monotonic() - started)))
    return LookupResult(answer, view)
