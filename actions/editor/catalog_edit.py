"""Editing catalog records from the console: the YAML files stay the source of truth.

A save builds the new record from the form, writes it into its file *in memory* with ruamel.yaml's round trip
(the other records, the comments and the layout stay as they were), checks the whole catalog directory with
:func:`actions.catalog.schema.read_catalog` on a temporary copy, and only when that passes replaces the file
atomically, loads the catalog into the database and records a :class:`~actions.editor.models.CatalogChange`.
An error found by the check comes back as ``file:line: message`` and, when the line belongs to the record, with the
form field it is about. A record changed by someone else since the form was opened is refused (its hash is carried
in the form). Saves are serialised by an exclusive ``flock`` on the catalog directory (gateway replicas included).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from sqlalchemy import select
from sqlalchemy.orm import Session

from actions.catalog.loader import LoadReport, load_catalog
from actions.catalog.schema import GROUPS_FILE, ID_PATTERN, Catalog, mention_key, read_catalog
from actions.catalog.yamlsource import SourceError, read_yaml
from actions.editor.models import CatalogChange

# Top-level keys of a record, in the order new records are written (docs/catalog-format.md).
RECORD_KEYS = ("id", "name", "aliases", "code", "authority", "applicants", "documents", "steps", "processing_time",
               "fees", "online", "agent_can_file", "delivery_by_post", "legal_basis", "notes", "sources",
               "verified_on", "unconfirmed")
NESTED = {"authority": ("level", "name"), "fees": ("amount", "exemptions", "online_reduction"),
          "online": ("level", "portals", "url")}
DOCUMENT_KEYS = ("name", "form", "kind", "count", "note")
# Fields whose change needs a new model: the entity extractor compiles names and aliases at training time.
NAME_FIELDS = ("name", "aliases")
# Fields the bot cannot answer from when they are empty (shown on the list page).
ANSWER_FIELDS = ("code", "authority.level", "authority.name", "applicants", "documents", "steps", "processing_time",
                 "fees.amount", "online.level", "online.url", "agent_can_file", "delivery_by_post", "legal_basis")
_local_lock = threading.Lock()


class StaleRecord(Exception):
    """The record changed (or vanished) since the form was opened."""


@dataclass
class FieldProblem:
    """One problem with the editor's input: the form field it belongs to (``""`` for the whole record)."""

    field: str
    message: str
    where: str = ""  # file:line, when the catalog check found it


@dataclass
class Located:
    """A record as it is in its file."""

    procedure_id: str
    file: Path
    index: int
    record: dict[str, Any]  # plain data (dates as ISO strings)
    field_name: str  # the file's ``field``

    @property
    def digest(self) -> str:
        return record_hash(self.record)


@dataclass
class SaveResult:
    ok: bool
    problems: list[FieldProblem] = field(default_factory=list)
    change: CatalogChange | None = None
    report: LoadReport | None = None
    names_changed: bool = False


def _yaml() -> YAML:
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 100_000  # never fold a long line the editor wrote on one line
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    return yaml


def plain(value: Any) -> Any:
    """Round-trip YAML (or pydantic dump) as plain JSON-able data; dates become ISO strings."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, str):
        return str(value)
    return value


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plain(record), sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:32]


def catalog_files(catalog_dir: Path) -> list[Path]:
    """The files procedures live in (the groups file aside)."""
    return sorted(p for p in catalog_dir.glob("*.yml") if p.name != GROUPS_FILE)


def file_field(path: Path) -> str:
    """The ``field`` a catalog file declares (its file name when it cannot be read)."""
    doc = read_yaml(path)
    if isinstance(doc, SourceError) or not isinstance(doc.data, dict):
        return path.stem
    return str(doc.data.get("field") or path.stem)


def locate(catalog_dir: Path, procedure_id: str) -> Located | None:
    """Where the record with this id is, read from the files as they are now."""
    for path in catalog_files(catalog_dir):
        doc = read_yaml(path)
        if isinstance(doc, SourceError) or not isinstance(doc.data, dict):
            continue
        for i, rec in enumerate(doc.data.get("procedures") or []):
            if isinstance(rec, dict) and rec.get("id") == procedure_id:
                return Located(procedure_id, path, i, plain(rec), str(doc.data.get("field") or path.stem))
    return None


# --- the form ------------------------------------------------------------------------------------------------

def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


def _opt(text: str) -> str | None:
    text = text.strip()
    return text or None


def _bool(text: str) -> bool | str | None:
    return {"": None, "true": True, "false": False}.get(text.strip(), text.strip())


def record_from_form(form: Mapping[str, str], multi: Mapping[str, Sequence[str]], procedure_id: str
                     ) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The record the form describes (plain data, schema order) and the problems that stop it being built.

    ``form`` holds single values, ``multi`` the repeated ones (``online_portals`` and the document rows
    ``doc_name``, ``doc_form``, ``doc_kind``, ``doc_count``, ``doc_note``). Values the schema rejects (an unknown
    authority level, a bad link) are kept as typed so that the catalog check reports them with their line.
    """
    problems: list[FieldProblem] = []

    def get(name: str) -> str:
        return form.get(name, "") or ""

    documents: list[dict[str, Any]] = []
    rows = zip(*(list(multi.get(f"doc_{k}", [])) for k in DOCUMENT_KEYS), strict=False)
    for n, (name, form_name, kind, count, note) in enumerate(rows, 1):
        if not any(v.strip() for v in (name, form_name, kind, count, note)):
            continue
        count_value: int | str | None = _opt(count)
        if count_value is not None:
            if re.fullmatch(r"\d{1,3}", str(count_value)):
                count_value = int(str(count_value))
            else:
                problems.append(FieldProblem("documents", f"Giấy tờ {n}: số lượng phải là số nguyên."))
        documents.append({"name": name.strip(), "form": _opt(form_name), "kind": _opt(kind), "count": count_value,
                          "note": _opt(note)})
    verified: str | dt.date = get("verified_on").strip()
    try:
        verified = dt.date.fromisoformat(str(verified))
    except ValueError:
        problems.append(FieldProblem("verified_on", "Ngày kiểm tra phải có dạng năm-tháng-ngày, ví dụ 2026-11-27."))
    record: dict[str, Any] = {
        "id": procedure_id,
        "name": get("name").strip(),
        "aliases": _lines(get("aliases")),
        "code": _opt(get("code")),
        "authority": {"level": _opt(get("authority_level")), "name": _opt(get("authority_name"))},
        "applicants": _opt(get("applicants")),
        "documents": documents,
        "steps": _lines(get("steps")),
        "processing_time": _opt(get("processing_time")),
        "fees": {"amount": _opt(get("fees_amount")), "exemptions": _lines(get("fees_exemptions")),
                 "online_reduction": _opt(get("fees_online_reduction"))},
        "online": {"level": _opt(get("online_level")),
                   "portals": [p.strip() for p in multi.get("online_portals", []) if p.strip()],
                   "url": _opt(get("online_url"))},
        "agent_can_file": _bool(get("agent_can_file")),
        "delivery_by_post": _bool(get("delivery_by_post")),
        "legal_basis": _lines(get("legal_basis")),
        "notes": _opt(get("notes")),
        "sources": _lines(get("sources")),
        "verified_on": verified,
        "unconfirmed": _lines(get("unconfirmed")),
    }
    return record, problems


def form_name(path: Sequence[str | int]) -> str:
    """The form field a YAML key path under a record belongs to (``("fees", "amount")`` → ``fees_amount``)."""
    if not path:
        return ""
    top = str(path[0])
    if top in NESTED and len(path) > 1 and isinstance(path[1], str):
        return f"{top}_{path[1]}"
    return top


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Keys whose value differs, nested ones as ``fees.amount``."""
    out = []
    for key in RECORD_KEYS:
        if key in NESTED:
            old, new = before.get(key) or {}, after.get(key) or {}
            out += [f"{key}.{sub}" for sub in NESTED[key] if plain(old.get(sub)) != plain(new.get(sub))]
        elif plain(before.get(key)) != plain(after.get(key)):
            out.append(key)
    return out


def _pick(record: Mapping[str, Any], dotted: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        value = (value or {}).get(part) if isinstance(value, Mapping) else None
    return plain(value)


def empty_fields(record: Mapping[str, Any]) -> list[str]:
    """Fields the bot has nothing to say about (``None`` or an empty list)."""
    return [name for name in ANSWER_FIELDS if _pick(record, name) in (None, [], "")]


# --- writing ---------------------------------------------------------------------------------------------------

def _seq(items: list[Any], like: Any = None) -> CommentedSeq:
    seq = CommentedSeq(_node(v) for v in items)
    if isinstance(like, CommentedSeq) and like.fa.flow_style():
        seq.fa.set_flow_style()
    return seq


def _node(value: Any) -> Any:
    if isinstance(value, Mapping):
        return CommentedMap((k, _node(v)) for k, v in value.items())
    if isinstance(value, list):
        return _seq(value)
    return value


def _assign(target: CommentedMap, key: str, value: Any) -> None:
    """Set ``target[key]`` only when it changes, keeping the comments and the style of what stays."""
    old = target.get(key)
    if key in target and plain(old) == plain(value):
        return
    if isinstance(value, Mapping) and isinstance(old, CommentedMap):
        for sub, sub_value in value.items():
            _assign(old, sub, sub_value)
        return
    target[key] = _seq(value, old) if isinstance(value, list) else _node(value)


def render_file(text: str, record: dict[str, Any], index: int | None) -> str:
    """The file's text with ``record`` put at ``index`` of ``procedures`` (appended when ``None``)."""
    yaml = _yaml()
    data = yaml.load(text)
    procedures = data["procedures"]
    if index is None:
        procedures.append(_node({k: record[k] for k in RECORD_KEYS}))
    else:
        target = procedures[index]
        for key in RECORD_KEYS:
            _assign(target, key, record[key])
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


@contextlib.contextmanager
def _locked(catalog_dir: Path) -> Iterator[None]:
    with _local_lock:
        fd = os.open(catalog_dir, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _line_fields(text: str, name: str, index: int) -> dict[int, str]:
    """Line number → form field, for the lines of record ``index`` of a file's text."""
    with tempfile.TemporaryDirectory(prefix="dvcbot-catalog-") as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8")
        doc = read_yaml(path)
    if isinstance(doc, SourceError):
        return {}
    out: dict[int, str] = {}
    for path_, line in sorted(doc.lines.items(), key=lambda item: len(item[0])):
        if len(path_) >= 3 and path_[:2] == ("procedures", index):
            out[line] = form_name(path_[2:])  # deeper paths come later and win
    return out


def check_with(catalog_dir: Path, name: str, text: str) -> tuple[Catalog, list[SourceError]]:
    """``read_catalog`` on a copy of the directory in which file ``name`` holds ``text``."""
    with tempfile.TemporaryDirectory(prefix="dvcbot-catalog-") as tmp:
        copy = Path(tmp) / catalog_dir.name
        copy.mkdir()
        for path in catalog_dir.glob("*.yml"):
            shutil.copyfile(path, copy / path.name)
        (copy / name).write_text(text, encoding="utf-8")
        return read_catalog(copy, copy)


def save(session: Session, catalog_dir: Path, record: dict[str, Any], editor: str, *, expected: str | None = None,
         new_in: str | None = None, root: Path | None = None, note: str = "",
         form_problems: Sequence[FieldProblem] = ()) -> SaveResult:
    """Write ``record`` back to its YAML file, check, load and record the change; nothing is written on error.

    Editing: ``expected`` is the hash of the record when the form was opened (:class:`StaleRecord` when it no
    longer matches). Adding: ``new_in`` is the name of the file the record goes into. ``root`` is what the file
    names in the database and the messages are relative to. With ``form_problems`` (input that could not be
    read) the record is only checked, so that every problem is shown at once, and never written.
    """
    pid = str(record["id"])
    with _locked(catalog_dir):
        if new_in is None:
            found = locate(catalog_dir, pid)
            if found is None or found.digest != expected:
                raise StaleRecord(pid)
            path, index, before = found.file, found.index, found.record
        else:
            path = catalog_dir / new_in
            if path.parent != catalog_dir or path.name == GROUPS_FILE or not path.is_file():
                return SaveResult(False, [FieldProblem("file", "Chọn một tệp lĩnh vực có trong danh mục.")])
            if not re.fullmatch(ID_PATTERN, pid):
                return SaveResult(False, [FieldProblem(
                    "id", "Mã chỉ gồm chữ thường không dấu, số và dấu _, bắt đầu bằng một chữ (2–80 ký tự).")])
            if locate(catalog_dir, pid) is not None:
                return SaveResult(False, [FieldProblem("id", f"Mã {pid!r} đã có thủ tục khác dùng.")])
            index, before = None, {}
        original = path.read_text(encoding="utf-8")
        try:
            text = render_file(original, record, index)
        except Exception as exc:  # a file ruamel cannot read back is reported, not a 500
            return SaveResult(False, [FieldProblem("", f"Không đọc được tệp {path.name}: {exc}")])
        checked, errors = check_with(catalog_dir, path.name, text)
        if errors or form_problems:
            if index is None:
                index = len(_yaml().load(text)["procedures"]) - 1
            lines = _line_fields(text, path.name, index)
            prefix = _relative_dir(catalog_dir, root)
            problems = list(form_problems)
            for err in _consequences_dropped(errors, path.name):
                problems.append(FieldProblem(_field_of(err, path.name, lines), err.message,
                                             f"{prefix}{err.file}:{err.line}"))
            return SaveResult(False, problems)
        after = plain({k: record[k] for k in RECORD_KEYS})
        fields = changed_fields(before, after)
        if new_in is not None:  # a new record: the fields it fills
            fields = [f for f in fields if _pick(after, f) not in (None, [], "")]
        if not fields:
            return SaveResult(True, [], None, None)
        # the copy that passed is what the directory now holds (the lock keeps other saves out meanwhile)
        prefix = _relative_dir(catalog_dir, root)
        checked.procedures = {k: (prefix + file, rec) for k, (file, rec) in checked.procedures.items()}
        _write_atomically(path, text)
        try:
            change = CatalogChange(
                procedure_id=pid, editor=editor, action="create" if new_in else "update",
                file=f"{prefix}{path.name}", fields=fields,
                before={f: _pick(before, f) for f in fields} if new_in is None else {},
                after={f: _pick(after, f) for f in fields}, note=note)
            session.add(change)
            report = load_catalog(session, checked)  # commits the change with the catalog
        except BaseException:
            session.rollback()
            _write_atomically(path, original)
            raise
    names = any(f in NAME_FIELDS for f in fields)
    return SaveResult(True, [], change, report, names_changed=names)


def _consequences_dropped(errors: list[SourceError], name: str) -> list[SourceError]:
    """Without the groups' "not a procedure id" errors that only follow from the edited file failing its schema
    (a file with a schema error is left out of the catalog as a whole)."""
    if not any(e.file == name and _SCHEMA_ERROR.match(e.message) for e in errors):
        return errors
    return [e for e in errors if not (e.file == GROUPS_FILE and "is not a procedure id" in e.message)]


_SCHEMA_ERROR = re.compile(r"(procedures|field)\b[.:]")
_MENTIONS_LINE = re.compile(r"\(([^()\s:]+):(\d+)\)$")


def _field_of(err: SourceError, name: str, lines: dict[int, str]) -> str:
    """The form field an error is about: by its line in the edited record, or by the line of the record it names
    ("alias 'x' is also used by 'y' (file:line)" is reported in the later file)."""
    where = lines.get(err.line, "") if err.file == name else ""
    if not where and (match := _MENTIONS_LINE.search(err.message)) and match.group(1).endswith(name):
        where = lines.get(int(match.group(2)), "")
    if where and err.message.startswith("name "):
        where = "name"
    return where


def _relative_dir(catalog_dir: Path, root: Path | None) -> str:
    if root is not None and catalog_dir.is_relative_to(root):
        rel = catalog_dir.relative_to(root).as_posix()
        return f"{rel}/" if rel != "." else ""
    return ""


def history(session: Session, procedure_id: str, limit: int = 100) -> list[CatalogChange]:
    return list(session.scalars(select(CatalogChange).where(CatalogChange.procedure_id == procedure_id)
                                .order_by(CatalogChange.id.desc()).limit(limit)))


def search_parts(catalog: Catalog, pid: str) -> list[str]:
    """What a search may match for one procedure (id, names, field, authority), without case or diacritics."""
    _, rec = catalog.procedures[pid]
    parts = [pid, rec.name, *rec.aliases, catalog.fields.get(pid, ""), rec.authority.level or "",
             rec.authority.name or "", rec.code or ""]
    return [pid, *(mention_key(p) for p in parts[1:] if p)]
