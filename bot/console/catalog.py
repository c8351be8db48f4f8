"""Console pages for editors: the procedure catalog — list and search, edit or add a record, its history.

The YAML files under ``DVCBOT_CATALOG_DIR`` stay the source of truth: the list reads them, and a save goes through
:func:`actions.editor.catalog_edit.save` (write back to the file, check the whole catalog, load it into the
database, record the change). The action server reads the catalog from the database on every question, so a
saved change is answered at once; only names and aliases need a new model (the entity extractor compiles them).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from actions.catalog.schema import Catalog, mention_key, read_catalog
from actions.catalog.yamlsource import SourceError
from actions.editor import catalog_edit as edit
from bot.console.auth import PATH, Principal, require_role, settings_of
from bot.console.views import local, render
from bot.database import db_of

ROLES = ("editor", "supervisor")
log = logging.getLogger(__name__)

LEVELS = {"commune": "cấp xã", "province": "cấp tỉnh", "police": "Công an"}
ONLINE_LEVELS = {"full": "toàn trình", "partial": "một phần", "none": "không làm trực tuyến"}
PORTALS = {"dvcqg": "Cổng DVC quốc gia", "vneid": "VNeID", "hanoi": "Cổng DVC Hà Nội"}
KINDS = {"original": "bản chính", "copy": "bản sao", "present": "chỉ xuất trình"}
LABELS = {
    "id": "Mã thủ tục", "name": "Tên chính thức", "aliases": "Cách gọi khác", "code": "Mã thủ tục quốc gia",
    "authority.level": "Cấp giải quyết", "authority.name": "Cơ quan giải quyết", "applicants": "Người nộp",
    "documents": "Giấy tờ", "steps": "Các bước", "processing_time": "Thời hạn giải quyết",
    "fees.amount": "Lệ phí", "fees.exemptions": "Miễn, giảm lệ phí", "fees.online_reduction": "Giảm khi nộp trực tuyến",
    "online.level": "Mức trực tuyến", "online.portals": "Cổng nhận hồ sơ", "online.url": "Đường link nộp",
    "agent_can_file": "Bưu điện nộp hộ", "delivery_by_post": "Trả kết quả qua bưu điện",
    "legal_basis": "Căn cứ pháp lý", "notes": "Lưu ý", "sources": "Nguồn", "verified_on": "Ngày kiểm tra",
    "unconfirmed": "Chưa xác minh", "file": "Tệp lĩnh vực",
}
MAX_FIELD = 5000


def _dirs(request: Request) -> tuple[Path, Path]:
    """The catalog directory and the folder file names are shown relative to (``data/catalog/x.yml``)."""
    catalog_dir = Path(settings_of(request).catalog_dir).resolve()
    return catalog_dir, catalog_dir.parent.parent


def _read(request: Request) -> tuple[Catalog, list[SourceError]]:
    catalog_dir, root = _dirs(request)
    return read_catalog(catalog_dir, root)


def _label(dotted: str) -> str:
    return LABELS.get(dotted, dotted)


def _matches(catalog: Catalog, pid: str, query: str) -> bool:
    """The query (case and diacritics ignored) is in one of the record's names, or all its words are."""
    if not query:
        return True
    _, rec = catalog.procedures[pid]
    parts = [*edit.search_parts(catalog, pid), mention_key(LEVELS.get(rec.authority.level or "", ""))]
    wanted = mention_key(query)
    words = wanted.split()
    return any(wanted in part or all(w in part.split() for w in words) for part in parts)


def _row(catalog: Catalog, pid: str) -> dict[str, Any]:
    file, rec = catalog.procedures[pid]
    record = edit.plain(rec.model_dump())
    return {"id": pid, "name": rec.name, "field": catalog.fields.get(pid, ""), "file": file,
            "level": LEVELS.get(rec.authority.level or "", "—"), "verified_on": rec.verified_on,
            "empty": [_label(f) for f in edit.empty_fields(record)], "unconfirmed": len(rec.unconfirmed),
            "aliases": rec.aliases}


@require_role(*ROLES)
async def catalog_list(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()[:100]
    level = request.query_params.get("level", "")
    catalog, errors = await run_in_threadpool(_read, request)
    rows = [_row(catalog, pid) for pid in catalog.procedures
            if _matches(catalog, pid, query) and (not level or catalog.procedures[pid][1].authority.level == level)]
    rows.sort(key=lambda r: (r["field"], r["name"]))
    return render(request, "catalog_list.html", rows=rows, q=query, level=level, levels=LEVELS, errors=errors,
                  total=len(catalog.procedures))


# --- the form --------------------------------------------------------------------------------------------------

def _form_values(record: dict[str, Any]) -> dict[str, Any]:
    """What the form's inputs show for a record (plain data)."""
    authority, fees, online = (record.get(k) or {} for k in ("authority", "fees", "online"))

    def text(value: Any) -> str:
        return "" if value is None else str(value)

    def lines(value: Any) -> str:
        return "\n".join(str(v) for v in value or [])

    def flag(value: Any) -> str:
        return "" if value is None else ("true" if value is True else "false" if value is False else str(value))

    docs = [{k: text(d.get(k)) for k in edit.DOCUMENT_KEYS} for d in record.get("documents") or []
            if isinstance(d, dict)]
    return {
        "id": text(record.get("id")), "name": text(record.get("name")), "aliases": lines(record.get("aliases")),
        "code": text(record.get("code")), "authority_level": text(authority.get("level")),
        "authority_name": text(authority.get("name")), "applicants": text(record.get("applicants")),
        "documents": docs, "steps": lines(record.get("steps")), "processing_time": text(record.get("processing_time")),
        "fees_amount": text(fees.get("amount")), "fees_exemptions": lines(fees.get("exemptions")),
        "fees_online_reduction": text(fees.get("online_reduction")), "online_level": text(online.get("level")),
        "online_portals": [str(p) for p in online.get("portals") or []], "online_url": text(online.get("url")),
        "agent_can_file": flag(record.get("agent_can_file")), "delivery_by_post": flag(record.get("delivery_by_post")),
        "legal_basis": lines(record.get("legal_basis")), "notes": text(record.get("notes")),
        "sources": lines(record.get("sources")), "verified_on": text(record.get("verified_on")),
        "unconfirmed": lines(record.get("unconfirmed")),
    }


def _today(request: Request) -> dt.date:
    from bot.console.views import handoff_of

    return dt.datetime.now(handoff_of(request).config.hours.tz).date()


def _files(catalog_dir: Path) -> list[tuple[str, str]]:
    return [(p.name, edit.file_field(p)) for p in edit.catalog_files(catalog_dir)]


async def _form_page(request: Request, *, values: dict[str, Any], new: bool, status: int = 200,
                     digest: str = "", file: str = "", problems: list[edit.FieldProblem] | None = None,
                     previous_verified: str = "", stale: bool = False, saved: str = "") -> Response:
    catalog_dir, _ = _dirs(request)
    files = await run_in_threadpool(_files, catalog_dir)
    by_field: dict[str, list[str]] = {}
    general: list[edit.FieldProblem] = []
    for problem in problems or []:
        if problem.field:
            by_field.setdefault(problem.field, []).append(
                problem.message + (f" ({problem.where})" if problem.where else ""))
        if not problem.field or problem.where:
            general.append(problem)
    return render(request, "catalog_edit.html", status, v=values, new=new, digest=digest, file=file, files=files,
                  errors=by_field, general=general, has_errors=bool(problems), previous_verified=previous_verified,
                  stale=stale, saved=saved, levels=LEVELS, online_levels=ONLINE_LEVELS, portals=PORTALS, kinds=KINDS,
                  labels=LABELS, today=_today(request).isoformat())


@require_role(*ROLES)
async def edit_page(request: Request) -> Response:
    pid = request.path_params["pid"]
    catalog_dir, _ = _dirs(request)
    found = await run_in_threadpool(edit.locate, catalog_dir, pid)
    if found is None:
        return render(request, "catalog_missing.html", 404, pid=pid)
    values = _form_values(found.record)
    previous = values["verified_on"]
    values["verified_on"] = _today(request).isoformat()
    return await _form_page(request, values=values, new=False, digest=found.digest,
                            file=found.file.name, previous_verified=previous,
                            saved=request.query_params.get("saved", ""))


@require_role(*ROLES)
async def new_page(request: Request) -> Response:
    values = _form_values({"verified_on": _today(request).isoformat()})
    return await _form_page(request, values=values, new=True)


def _single(form: FormData) -> dict[str, str]:
    return {k: v[:MAX_FIELD] for k, v in form.items() if isinstance(v, str)}


def _multi(form: FormData) -> dict[str, list[str]]:
    names = ("online_portals", *(f"doc_{k}" for k in edit.DOCUMENT_KEYS))
    return {n: [v[:MAX_FIELD] for v in form.getlist(n) if isinstance(v, str)] for n in names}


def _echo(form: FormData, single: dict[str, str], multi: dict[str, list[str]]) -> dict[str, Any]:
    """The editor's input as typed, to show the form again."""
    values: dict[str, Any] = {k: single.get(k, "") for k in _form_values({})}
    values["online_portals"] = multi["online_portals"]
    rows = zip(*(multi[f"doc_{k}"] for k in edit.DOCUMENT_KEYS), strict=False)
    values["documents"] = [dict(zip(edit.DOCUMENT_KEYS, row, strict=True)) for row in rows
                           if any(cell.strip() for cell in row)]
    return values


async def _save(request: Request, pid: str, new_in: str | None) -> Response:
    form = await request.form()
    single, multi = _single(form), _multi(form)
    me: Principal = request.state.staff
    catalog_dir, root = _dirs(request)
    record, form_problems = edit.record_from_form(single, multi, pid)
    digest = single.get("digest", "")
    values = _echo(form, single, multi)
    values["id"] = pid

    def save(session: Any) -> edit.SaveResult:
        return edit.save(session, catalog_dir, record, me.username, expected=digest, new_in=new_in, root=root,
                         form_problems=form_problems)

    try:
        result = await db_of(request).run(save)
    except edit.StaleRecord:
        # the editor's input stays on the page, with the old hash: saving it again is refused again
        return await _form_page(request, values=values, new=False, status=409, digest=digest,
                                file=single.get("file", ""), previous_verified=single.get("previous_verified", ""),
                                stale=True)
    if not result.ok:
        return await _form_page(request, values=values, new=new_in is not None, status=400, digest=digest,
                                file=new_in or single.get("file", ""), problems=result.problems,
                                previous_verified=single.get("previous_verified", ""))
    if result.change is None:
        saved = "nothing"
    elif new_in is not None:
        saved = "created"
    else:
        saved = "names" if result.names_changed else "fields"
    if result.change is not None:
        log.info("catalog %s %s by %s: %s", result.change.action, pid, me.username, ", ".join(result.change.fields))
    return RedirectResponse(f"{PATH}/catalog/{pid}?{urlencode({'saved': saved})}", status_code=303)


@require_role(*ROLES)
async def save_record(request: Request) -> Response:
    return await _save(request, request.path_params["pid"], None)


@require_role(*ROLES)
async def create_record(request: Request) -> Response:
    form = await request.form()
    pid = str(form.get("id") or "").strip()[:80]
    return await _save(request, pid, str(form.get("file") or "").strip()[:200])


# --- history ---------------------------------------------------------------------------------------------------

def _shown(value: Any) -> list[str]:
    """A value of the history as lines (a list item per line; a document as its name and details)."""
    if value is None or value == []:
        return ["(trống)"]
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, dict):
                details = [f"{k}: {v}" for k, v in item.items() if k != "name" and v not in (None, "")]
                out.append(str(item.get("name", "")) + (f" ({'; '.join(details)})" if details else ""))
            else:
                out.append(str(item))
        return out
    if isinstance(value, bool):
        return ["có" if value else "không"]
    return [str(value)]


def _diff(before: Any, after: Any) -> dict[str, list[tuple[str, str]]]:
    """Lines as ``(mark, text)``: ``-`` only before, ``+`` only after, ``=`` in both."""
    old, new = _shown(before), _shown(after)
    return {"before": [("=" if line in new else "-", line) for line in old],
            "after": [("=" if line in old else "+", line) for line in new]}


@require_role(*ROLES)
async def history_page(request: Request) -> Response:
    pid = request.path_params["pid"]
    catalog_dir, _ = _dirs(request)
    found = await run_in_threadpool(edit.locate, catalog_dir, pid)
    changes = await db_of(request).run(lambda s: edit.history(s, pid))
    entries = [{"at": local(request, c.created_at, "%H:%M %d/%m/%Y"), "editor": c.editor, "action": c.action,
                "file": c.file,
                "fields": [{"name": f, "label": _label(f), **_diff(c.before.get(f), c.after.get(f))}
                           for f in c.fields]}
               for c in changes]
    title = found.record.get("name") if found else pid
    return render(request, "catalog_history.html", pid=pid, title=title, entries=entries, exists=found is not None)


routes = [
    Route("/catalog", catalog_list, methods=["GET"]),
    Route("/catalog/new", new_page, methods=["GET"]),
    Route("/catalog/new", create_record, methods=["POST"]),
    Route("/catalog/{pid}", edit_page, methods=["GET"]),
    Route("/catalog/{pid}", save_record, methods=["POST"]),
    Route("/catalog/{pid}/history", history_page, methods=["GET"]),
]
