"""Where a dossier's status comes from, behind one interface.

A source answers one question: "the dossier with this code whose registered phone ends in these four digits".
It answers ``None`` both when the code is unknown and when the digits are wrong — callers cannot tell the two
apart, and neither can a citizen. A source that cannot answer raises ``SourceUnavailable``; it never guesses.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from actions.dossiers import register
from actions.dossiers.models import Dossier

_NO_DIGITS = "\x00\x00\x00\x00"  # compared against when the code is unknown, so both paths do the same work


class SourceUnavailable(Exception):
    """The source could not be asked (down, timing out, misconfigured, or its circuit is open)."""


@dataclass(frozen=True)
class DossierView:
    """What a verified citizen may see about their dossier."""

    code: str
    procedure_name: str
    received_on: dt.date
    status: str
    due_on: dt.date | None = None
    status_detail: str | None = None
    delivery: str = "counter"
    shipment_code: str | None = None
    shipment_status: str | None = None
    in_register: bool = False  # only the register's dossiers can be followed for notifications


class StatusSource(Protocol):
    """One place dossier statuses come from."""

    async def lookup(self, code: str, last4: str) -> DossierView | None:
        """The verified dossier, or ``None`` for an unknown code and for wrong digits alike."""
        ...


def view_of(dossier: Dossier) -> DossierView:
    return DossierView(
        code=dossier.code, procedure_name=dossier.procedure_name, received_on=dossier.received_on,
        status=dossier.status, due_on=dossier.due_on, status_detail=dossier.status_detail,
        delivery=dossier.delivery, shipment_code=dossier.shipment_code, shipment_status=dossier.shipment_status,
        in_register=True,
    )


class RegisterSource:
    """The agent's own register in the database."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions

    async def lookup(self, code: str, last4: str) -> DossierView | None:
        try:
            with self.sessions() as session:
                dossier = register.find(session, code)
                expected = dossier.phone_last4 if dossier is not None else _NO_DIGITS
                matches = hmac.compare_digest(expected.encode(), last4.encode())
                return view_of(dossier) if dossier is not None and matches else None
        except Exception as exc:  # a database that is down is an unavailable source, not a crash
            raise SourceUnavailable(f"register: {type(exc).__name__}") from exc


class ChainSource:
    """Several sources asked in order; the first verified answer wins.

    On a miss every source is asked, so that a code known to one source and a code known to none take the
    same path; if any of them was unavailable the miss is reported as ``SourceUnavailable``, because the
    dossier might be in the source that could not answer.
    """

    def __init__(self, sources: Sequence[StatusSource]) -> None:
        self.sources = list(sources)

    async def lookup(self, code: str, last4: str) -> DossierView | None:
        unavailable: SourceUnavailable | None = None
        for source in self.sources:
            try:
                found = await source.lookup(code, last4)
            except SourceUnavailable as exc:
                unavailable = exc
                continue
            if found is not None:
                return found
        if unavailable is not None:
            raise unavailable
        return None
