"""The catalog's file format (``data/catalog/*.yml``) and every check an editor's change must pass."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from actions.catalog.yamlsource import SourceError, YamlDoc, read_yaml
from nlu.normalize import normalize, strip_diacritics

ID_PATTERN = r"^[a-z][a-z0-9_]{1,79}$"
GROUPS_FILE = "_groups.yml"


def _check_url(value: str | None) -> str | None:
    if value is None:
        return None
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"not a web link: {value!r}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Authority(_Strict):
    level: Literal["commune", "province", "police"] | None = None
    name: str | None = None


class Document(_Strict):
    name: str = Field(min_length=1)
    form: str | None = None
    kind: Literal["original", "copy", "present"] | None = None
    count: int | None = Field(default=None, ge=1, le=50)
    note: str | None = None


class Fees(_Strict):
    amount: str | None = None
    exemptions: list[str] = []
    online_reduction: str | None = None


class Online(_Strict):
    level: Literal["full", "partial", "none"] | None = None
    portals: list[Literal["dvcqg", "vneid", "hanoi"]] = []
    url: str | None = None

    _url = field_validator("url")(_check_url)


class ProcedureRecord(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=3)
    aliases: list[str] = []
    code: str | None = Field(default=None, pattern=r"^\d\.\d{6}$")
    authority: Authority = Authority()
    applicants: str | None = None
    documents: list[Document] = []
    steps: list[str] = []
    processing_time: str | None = None
    fees: Fees = Fees()
    online: Online = Online()
    agent_can_file: bool | None = None
    delivery_by_post: bool | None = None
    legal_basis: list[str] = []
    notes: str | None = None
    sources: list[str] = Field(min_length=1)
    verified_on: dt.date
    unconfirmed: list[str] = []

    @field_validator("sources")
    @classmethod
    def _sources_are_links(cls, value: list[str]) -> list[str]:
        for url in value:
            _check_url(url)
        return value


class CatalogFile(_Strict):
    field: str = Field(min_length=2)
    procedures: list[ProcedureRecord] = Field(min_length=1)


class GroupRecord(_Strict):
    id: str = Field(pattern=ID_PATTERN)
    names: list[str] = Field(min_length=1)
    question: str = Field(min_length=3)
    choices: list[str] = Field(min_length=2)


class GroupsFile(_Strict):
    groups: list[GroupRecord] = []


class Catalog(BaseModel):
    """The whole catalog as read from disk."""

    procedures: dict[str, tuple[str, ProcedureRecord]] = {}  # id -> (file, record)
    fields: dict[str, str] = {}  # id -> field name
    groups: dict[str, GroupRecord] = {}


def mention_key(text: str) -> str:
    """The form in which two names count as the same (case, tone placement and diacritics ignored)."""
    return strip_diacritics(normalize(text)).strip()


def _pydantic_errors(doc: YamlDoc, exc: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[SourceError]:
    out = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        where = ".".join(str(p) for p in loc)
        out.append(SourceError(doc.file, doc.line_of(loc), f"{where}: {err['msg']}"))
    return out


def read_catalog(directory: Path, root: Path | None = None) -> tuple[Catalog, list[SourceError]]:
    """Read and check every catalog file; returns what was valid and every error found."""
    catalog = Catalog()
    errors: list[SourceError] = []
    mention_owner: dict[str, tuple[str, str, int]] = {}  # key -> (owner id, file, line)
    name_owner: dict[str, tuple[str, str, int]] = {}

    def claim(key: str, owner: str, file: str, line: int, what: str) -> None:
        if not key:
            errors.append(SourceError(file, line, f"{what} is empty once diacritics are ignored"))
            return
        prev = mention_owner.get(key)
        if prev and prev[0] != owner:
            errors.append(
                SourceError(file, line, f"{what} {key!r} is also used by {prev[0]!r} ({prev[1]}:{prev[2]})")
            )
        elif not prev:
            mention_owner[key] = (owner, file, line)

    files = sorted(p for p in directory.glob("*.yml"))
    if not files:
        errors.append(SourceError(str(directory), 1, "no catalog files (*.yml) found"))
    group_doc: YamlDoc | None = None
    for path in files:
        doc = read_yaml(path, root)
        if isinstance(doc, SourceError):
            errors.append(doc)
            continue
        if path.name == GROUPS_FILE:
            group_doc = doc
            continue
        try:
            parsed = CatalogFile.model_validate(doc.data)
        except ValidationError as exc:
            errors.extend(_pydantic_errors(doc, exc))
            continue
        for i, rec in enumerate(parsed.procedures):
            line = doc.line_of(("procedures", i, "id"))
            if rec.id in catalog.procedures:
                first = catalog.procedures[rec.id][0]
                errors.append(SourceError(doc.file, line, f"id {rec.id!r} is already used in {first}"))
                continue
            key = mention_key(rec.name)
            if key in name_owner:
                errors.append(
                    SourceError(doc.file, line, f"name {rec.name!r} is already used by {name_owner[key][0]!r}")
                )
            name_owner[key] = (rec.id, doc.file, line)
            catalog.procedures[rec.id] = (doc.file, rec)
            catalog.fields[rec.id] = parsed.field
            claim(key, rec.id, doc.file, doc.line_of(("procedures", i, "name")), "name")
            for j, alias in enumerate(rec.aliases):
                claim(mention_key(alias), rec.id, doc.file, doc.line_of(("procedures", i, "aliases", j)), "alias")
    if group_doc is not None:
        try:
            groups = GroupsFile.model_validate(group_doc.data or {})
        except ValidationError as exc:
            errors.extend(_pydantic_errors(group_doc, exc))
        else:
            for i, grp in enumerate(groups.groups):
                line = group_doc.line_of(("groups", i, "id"))
                if grp.id in catalog.groups or grp.id in catalog.procedures:
                    errors.append(SourceError(group_doc.file, line, f"id {grp.id!r} is already used"))
                    continue
                for j, choice in enumerate(grp.choices):
                    if choice not in catalog.procedures:
                        errors.append(
                            SourceError(
                                group_doc.file,
                                group_doc.line_of(("groups", i, "choices", j)),
                                f"choice {choice!r} is not a procedure id in the catalog",
                            )
                        )
                for j, name in enumerate(grp.names):
                    claim(mention_key(name), grp.id, group_doc.file, group_doc.line_of(("groups", i, "names", j)),
                          "group name")
                catalog.groups[grp.id] = grp
    return catalog, errors
