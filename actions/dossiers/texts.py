"""Answers about a dossier, assembled from the fragments in ``data/content/dossiers.yml``."""

from __future__ import annotations

from typing import Any

from actions.common import content, format_date
from actions.dossiers.sources import DossierView


def parts() -> dict[str, Any]:
    return content("dossiers")


def procedure_phrase(name: str) -> str:
    """A procedure name as it reads inside a sentence ("hồ sơ đăng ký khai sinh")."""
    return name[:1].lower() + name[1:]


def details(view: DossierView, fragments: dict[str, Any]) -> str:
    """The verified dossier's facts, one line each: code, dates, status, what is missing, the shipment."""
    lines = fragments["lines"]
    out = [
        lines["code"].format(code=view.code),
        lines["received_on"].format(date=format_date(view.received_on)),
        lines["status"].format(status=fragments["statuses"][view.status]),
    ]
    if view.status_detail:
        key = "missing" if view.status == "additional_documents" else "note"
        out.append(lines[key].format(detail=view.status_detail))
    if view.due_on:
        out.append(lines["due_on"].format(date=format_date(view.due_on)))
    if view.shipment_code and view.shipment_status:
        out.append(lines["shipment"].format(shipment_code=view.shipment_code,
                                            shipment_status=fragments["shipment_statuses"][view.shipment_status]))
    elif view.shipment_code:
        out.append(lines["shipment_code_only"].format(shipment_code=view.shipment_code))
    elif view.delivery == "post" and view.status != "delivered":
        out.append(lines["by_post"])
    return "\n".join(out)


def notification_text(view: DossierView, fragments: dict[str, Any]) -> str:
    """The message sent to a subscriber when the dossier changed."""
    return str(fragments["notification"]).format(procedure_name=procedure_phrase(view.procedure_name),
                                                 details=details(view, fragments)).strip()
