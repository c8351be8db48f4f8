"""Labelling inbox messages: they become training examples in ``data/nlu/inbox.yml``, checked before they stay.

One file for every example that comes from the inbox, so that editors review them in one place (``git diff``)
and the hand-written files are never rewritten by a program. In it each intent has one block; new examples go at
the end of their intent's block (or a new block at the end of the file), and everything else in the file —
comments included — is kept as it is.

Before writing, an example is compared with every example of ``data/nlu`` and ``data/heldout`` the way ``dvcbot
content check`` compares them (accents, case, punctuation and abbreviations ignored): the same sentence under the
same intent is not written again, under another intent the label is refused. After writing, the checks of
``dvcbot content check`` that run in-process (everything but ``rasa data validate``, which takes about 10 s in
the Rasa virtualenv) run on the data; on any error the file is put back as it was and the errors are shown as
``file:line: message``. Editors then run the full ``make check`` and ``make train`` as usual.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from actions.catalog.schema import read_catalog
from actions.editor.models import InboxItem
from dvcbot import PROJECT_ROOT
from dvcbot.content import (
    ContentPaths,
    _domain,
    _files,
    _mapping,
    check_abbreviations,
    check_content,
    example_key,
    parse_annotations,
    read_nlu,
)
from nlu.gazetteer import PROCEDURE, build_gazetteer
from nlu.normalize import syllables

INBOX_FILE = "inbox.yml"
MAX_EXAMPLE = 300
HEADER = (
    "# Câu mẫu lấy từ hộp thư \"Câu chưa hiểu\" của trang quản lý (/console/inbox), do biên tập viên gán ý định.\n"
    "# Sửa tay được như mọi tệp khác trong data/nlu; trang quản lý thêm câu vào cuối khối của ý định.\n"
    'version: "3.1"\n'
    "nlu:\n"
)
_MARKED = re.compile(r"\[([^\[\]{}]+)\]")
_BRACKETS = re.compile(r"[\[\]{}]")
_SPACES = re.compile(r"\s+")


def content_paths(data_dir: Path, catalog_dir: Path, post_offices: Path) -> ContentPaths:
    """The content an inbox label is checked against: ``data_dir`` (nlu, heldout, rules, lexicon), the catalog,
    and the project's domain and config."""
    paths = ContentPaths.at(data_dir.parent)
    paths.catalog_dir, paths.post_offices = catalog_dir, post_offices
    paths.domain, paths.config = PROJECT_ROOT / "domain", PROJECT_ROOT / "config.yml"
    return paths


def intents(paths: ContentPaths) -> list[str]:
    """The domain's intents, sorted."""
    found, _, _ = _domain(paths)
    return sorted(found["intents"])


def procedures(paths: ContentPaths) -> list[tuple[str, str]]:
    """(id, name) of every catalog procedure and group, by name."""
    catalog, _ = read_catalog(paths.catalog_dir, paths.root)
    out = [(pid, record.name) for pid, (_, record) in catalog.procedures.items()]
    out += [(gid, f"{group.names[0]} (nhóm)" if group.names else gid) for gid, group in catalog.groups.items()]
    return sorted(out, key=lambda p: p[1].lower())


# --- one example -----------------------------------------------------------------------------------------------


def clean(text: str) -> str:
    """One line, single spaces, no control characters, at most ``MAX_EXAMPLE`` characters."""
    text = "".join(c if c.isprintable() else " " for c in text)
    return _SPACES.sub(" ", text).strip()[:MAX_EXAMPLE]


def _strip_brackets(text: str) -> str:
    return _SPACES.sub(" ", _BRACKETS.sub("", text)).strip()


def _whole_words(text: str, start: int, end: int) -> tuple[int, int]:
    while start > 0 and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    return start, end


def annotation(mention: str, procedure: str) -> str:
    value = json.dumps({"entity": PROCEDURE, "value": procedure}, ensure_ascii=False)
    return f"[{mention}]{value}"


def annotate(text: str, procedure: str, abbreviations: Mapping[str, str], catalog_dir: Path,
             hint: tuple[int, int] | None = None) -> str | None:
    """``text`` with its procedure mention annotated as ``[mention]{"entity": "procedure", "value": ...}``.

    The mention is what the editor put in square brackets; else what the entity extractor's gazetteer reads as
    that procedure or as a group it belongs to; else ``hint`` (where the extractor found one when the message came in).
    ``None`` when there is no mention to annotate.
    """
    marked = _MARKED.search(text)
    if marked and marked.group(1).strip():
        before, after = _strip_brackets(text[:marked.start()]), _strip_brackets(text[marked.end():])
        return " ".join(p for p in (before, annotation(marked.group(1).strip(), procedure), after) if p)
    text = _strip_brackets(text)
    span = None
    gazetteer, _ = build_gazetteer(catalog_dir, None, dict(abbreviations))
    words = syllables(text, dict(abbreviations))
    # a name of that very procedure, or of a group it belongs to ("căn cước" for can_cuoc_cap_doi)
    found = [m for m in gazetteer.without_redundant_groups(gazetteer.match([w.text for w in words]))
             if m.entity == PROCEDURE and (m.value == procedure or procedure in gazetteer.groups.get(m.value, ()))]
    if found:
        match = next((m for m in found if m.value == procedure), found[0])
        span = _whole_words(text, words[match.first].start, words[match.last - 1].end)
    elif hint and 0 <= hint[0] < hint[1] <= len(text) and text[hint[0]:hint[1]].strip():
        span = hint
    if span is None:
        return None
    start, end = span
    return f"{text[:start]}{annotation(text[start:end], procedure)}{text[end:]}"


# --- the file --------------------------------------------------------------------------------------------------


def add_examples(original: str | None, intent: str, examples: list[str]) -> tuple[str, int]:
    """The file's new text with ``examples`` at the end of ``intent``'s block, and the 1-based line of the first.

    Raises ``ValueError`` when the file is not an NLU file this can add to (the editor then fixes it by hand).
    """
    text = original if original and original.strip() else HEADER
    if not text.endswith("\n"):
        text += "\n"
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"YAML error: {exc}") from exc
    top = _mapping(root) if root is not None else {}
    nlu = top.get("nlu")
    lines = text.split("\n")[:-1]
    if isinstance(nlu, yaml.SequenceNode):
        for item in nlu.value:
            keys = _mapping(item)
            name, block = keys.get("intent"), keys.get("examples")
            if not (isinstance(name, yaml.ScalarNode) and name.value == intent and isinstance(block, yaml.ScalarNode)
                    and block.style == "|"):
                continue
            body = block.value.rstrip("\n").split("\n")
            first = block.start_mark.line + 1
            last = block.start_mark.line + len(body)
            indent = re.match(r"\s*", lines[first]).group() if first < len(lines) else "    "  # type: ignore[union-attr]
            lines[last + 1:last + 1] = [f"{indent}- {e}" for e in examples]
            return "\n".join(lines) + "\n", last + 2
    elif nlu is not None and not (isinstance(nlu, yaml.ScalarNode) and nlu.value in ("", "null", "~")):
        raise ValueError("'nlu:' is not a list")
    if "nlu" not in top:
        lines.append("nlu:")
    while lines and not lines[-1].strip():
        lines.pop()
    at = len(lines) + 3
    lines += [f"- intent: {intent}", "  examples: |", *[f"    - {e}" for e in examples]]
    return "\n".join(lines) + "\n", at


def _check_added(text: str, intent: str, examples: list[str]) -> None:
    """The written examples really are examples of ``intent`` (defence against a file laid out unusually)."""
    data = yaml.safe_load(text)
    found: set[str] = set()
    for item in (data or {}).get("nlu") or []:
        if isinstance(item, dict) and item.get("intent") == intent and isinstance(item.get("examples"), str):
            found |= {line[1:].strip() for line in item["examples"].splitlines() if line.startswith("-")}
    missing = [e for e in examples if e not in found]
    if missing:
        raise ValueError(f"the examples did not land under intent {intent!r}")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """One writer at a time for a data folder, across processes (gateway replicas)."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"dvcbot-inbox-{digest}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write(path: Path, text: str | None) -> None:
    """Replace ``path`` in one step (``None``: remove it)."""
    if text is None:
        path.unlink(missing_ok=True)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


# --- labelling -------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a label did: refused (``problems``), or which items were written where and which were known already."""

    problems: list[str] = field(default_factory=list)
    written: list[tuple[int, str]] = field(default_factory=list)  # (item id, "data/nlu/inbox.yml:12")
    known: list[tuple[int, str]] = field(default_factory=list)  # (item id, where the sentence already is)

    @property
    def ok(self) -> bool:
        return not self.problems


def label(session: Session, paths: ContentPaths, items: list[InboxItem], intent: str, procedure: str | None,
          texts: Mapping[int, str], editor: str) -> Outcome:
    """Write ``items`` (their text, or the editor's version in ``texts``) as examples of ``intent`` and mark them
    labelled; refuse — writing nothing — when a label is wrong or the data would fail the content checks."""
    out = Outcome()
    if not items:
        return Outcome(["Chưa chọn câu nào."])
    if intent not in intents(paths):
        return Outcome([f"Ý định «{intent}» không có trong domain."])
    if procedure and procedure not in {pid for pid, _ in procedures(paths)}:
        return Outcome([f"Mã thủ tục «{procedure}» không có trong danh mục."])
    abbreviations, _ = check_abbreviations(paths)
    training, _ = read_nlu(_files(paths.nlu), paths)
    heldout, _ = read_nlu(_files(paths.heldout), paths, heldout=True)
    seen = {example_key(ex.text, abbreviations): ex for ex in heldout.examples + training.examples}
    batch: dict[str, int] = {}
    new: list[tuple[InboxItem, str]] = []
    for item in items:
        edited = texts.get(item.id)
        text = clean(edited if edited is not None else item.text)
        if not text or not _strip_brackets(text):
            out.problems.append(f"Câu số {item.id} để trống.")
            continue
        if procedure:
            unchanged = edited is None or clean(edited) == clean(item.text)
            hint = next(((e["start"], e["end"]) for e in item.entities if e.get("entity") == PROCEDURE
                         and isinstance(e.get("start"), int) and isinstance(e.get("end"), int)), None)
            example = annotate(text, procedure, abbreviations, paths.catalog_dir, hint if unchanged else None)
            if example is None:
                out.problems.append(f"Không thấy tên thủ tục trong câu «{text}». Đặt tên thủ tục trong ngoặc "
                                    "vuông, ví dụ «làm [giấy khai sinh] cần gì», hoặc bỏ chọn thủ tục.")
                continue
        else:
            example = _strip_brackets(text)
        plain, _, bad = parse_annotations(example)
        if bad:
            out.problems.append(f"Câu «{text}»: {'; '.join(bad)}")
            continue
        key = example_key(plain, abbreviations)
        if not key:
            out.problems.append(f"Câu «{text}» không có chữ nào.")
            continue
        known = seen.get(key)
        if known is not None and known.intent != intent:
            where = "bộ câu thi" if known.heldout else "dữ liệu học"
            out.problems.append(f"Câu «{plain}» đã có trong {where} ({known.file}:{known.line}) với ý định "
                                f"«{known.intent}». Chọn ý định đó, hoặc sửa câu kia trước.")
        elif known is not None:
            note = " — bộ câu thi, không thêm vào dữ liệu học" if known.heldout else " — đã có"
            out.known.append((item.id, f"{known.file}:{known.line}{note}"))
        elif key in batch:
            out.known.append((item.id, f"trùng câu số {batch[key]}"))
        else:
            batch[key] = item.id
            new.append((item, example))
    if out.problems:
        return out
    if new:
        target = paths.nlu / INBOX_FILE
        examples = [e for _, e in new]
        with _file_lock(paths.nlu):
            original = target.read_text(encoding="utf-8") if target.exists() else None
            try:
                updated, first = add_examples(original, intent, examples)
                _check_added(updated, intent, examples)
            except ValueError as exc:
                return Outcome([f"Không ghi được vào {paths.rel(target)}: {exc}. Nhờ người quản trị xem tệp này."])
            paths.nlu.mkdir(parents=True, exist_ok=True)
            _write(target, updated)
            try:
                result = check_content(paths, rasa=False)
            except BaseException:
                _write(target, original)
                raise
            if not result.ok:
                _write(target, original)
                return Outcome(["Dữ liệu sau khi thêm không qua bước kiểm tra nên chưa ghi gì. Lỗi:",
                                *[str(p) for p in result.errors[:10]]])
        name = paths.rel(target)
        out.written = [(item.id, f"{name}:{first + k}") for k, (item, _) in enumerate(new)]
    now = dt.datetime.now(dt.UTC)
    places = dict(out.written + out.known)
    for item in items:
        item.state, item.label_intent, item.label_procedure = "labelled", intent, procedure or None
        item.labelled_by, item.labelled_at, item.written_to = editor[:80], now, places.get(item.id, "")[:200]
    session.commit()
    return out


def dismiss(session: Session, items: list[InboxItem], editor: str) -> int:
    """Take ``items`` out of the inbox without writing anything (greetings typed with a typo, spam...)."""
    now = dt.datetime.now(dt.UTC)
    for item in items:
        item.state, item.labelled_by, item.labelled_at = "dismissed", editor[:80], now
    session.commit()
    return len(items)
