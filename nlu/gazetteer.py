"""Gazetteers for dvcbot's entities: procedure names and places. Pure Python.

A :class:`Gazetteer` matches the syllables of a normalised message against
normalised names, ignoring diacritics the citizen did not type ("can cuoc"
matches "căn cước", "căn cuoc" too, but "cắn cước" does not), whole syllables
only, leftmost-longest first (so "cấp lại căn cước" wins over "căn cước").
Names of three syllables or more also match with one typo in one syllable,
when the misspelt syllable is not a known word.

The readers for the catalog (``data/catalog/*.yml``) and the post-office
directory (``data/post_offices.yml``) import PyYAML lazily.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from nlu.normalize import looks_like_syllable, strip_diacritics, syllables

PROCEDURE = "procedure"
LOCATION = "location"

# Higher wins when two names are spelt the same: a group name means the citizen
# was vague, so the bot should ask; editors' examples only add new names.
PRIORITY_GROUP = 30
PRIORITY_PROCEDURE = 20
PRIORITY_WARD = 22
PRIORITY_DISTRICT = 20
PRIORITY_WARD_BARE = 15
PRIORITY_DISTRICT_BARE = 12
PRIORITY_EXAMPLE = 10

MIN_FUZZY_SYLLABLES = 3
MAX_NAME_SYLLABLES = 40


class CatalogError(ValueError):
    """A catalog or post-office file that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Entry:
    """One name of one entity value."""

    entity: str
    value: str
    tokens: tuple[str, ...]
    priority: int = 0


class Match(NamedTuple):
    """A name found in syllables ``first`` (inclusive) to ``last`` (exclusive)."""

    entity: str
    value: str
    first: int
    last: int
    exact: bool


@functools.lru_cache(maxsize=65536)
def _marks(ch: str) -> frozenset[str]:
    if ch == "đ":
        return frozenset("\u0335")  # the stroke, as a pseudo mark
    return frozenset(c for c in unicodedata.normalize("NFD", ch)[1:])


@functools.lru_cache(maxsize=65536)
def accents_compatible(typed: str, name: str) -> bool:
    """True if ``typed`` is ``name`` with some (or no) diacritics left out.

    A name written without any diacritics (an editor's "[xa Binh Chanh](location)")
    accepts any accents.
    """
    if typed == name:
        return True
    if len(typed) != len(name) or strip_diacritics(typed) != strip_diacritics(name):
        return False
    if name.isascii():
        return True
    return all(_marks(a) <= _marks(b) for a, b in zip(typed, name, strict=True))


def _within_one_edit(a: str, b: str) -> bool:
    """Optimal-string-alignment distance ≤ 1 (one insert, delete, substitute or swap)."""
    if a == b:
        return True
    la, lb = len(a), len(b)
    if abs(la - lb) > 1:
        return False
    if la == lb:
        diff = [k for k in range(la) if a[k] != b[k]]
        if len(diff) == 1:
            return True
        return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]
    if la > lb:
        a, b = b, a
    k = 0
    while k < len(a) and a[k] == b[k]:
        k += 1
    return a[k:] == b[k + 1 :]


_I_OR_Y = re.compile(r"(?:[hklmst]|qu)?[iíìỉĩịyýỳỷỹỵ]")
_Y_TO_I = str.maketrans("yýỳỷỹỵ", "iíìỉĩị")


def fold_i_y(syllable: str) -> str:
    """Spells a final lone "i"/"y" one way: "kí"/"ký", "lí"/"lý", "quí"/"quý" match."""
    if len(syllable) <= 3 and _I_OR_Y.fullmatch(syllable):
        return syllable.translate(_Y_TO_I)
    return syllable


class Gazetteer:
    """Names → entity values, matched on syllables (see the module docstring)."""

    def __init__(
        self,
        entries: Iterable[Entry] = (),
        vocabulary: Iterable[str] = (),
        fuzzy: bool = True,
        groups: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """Builds the indexes.

        Args:
            entries: the names.
            vocabulary: accent-free known words (a typo is never a known word).
            fuzzy: allow one typo in names of three syllables or more.
            groups: group id → the procedure ids it stands for.
        """
        self.fuzzy = fuzzy
        self.groups: dict[str, list[str]] = {k: list(v) for k, v in (groups or {}).items()}
        self.entries: list[Entry] = []
        self.vocabulary: set[str] = set(vocabulary)
        self._seen: set[tuple[str, str, tuple[str, ...]]] = set()
        self._exact: dict[tuple[str, ...], list[int]] = {}
        self._wildcard: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        self._lengths: list[int] = []
        for entry in entries:
            self.add(entry)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, entry: Entry) -> bool:
        """Adds one name; returns False for an empty or repeated one."""
        tokens = tuple(fold_i_y(t) for t in entry.tokens if t)
        if not tokens or len(tokens) > MAX_NAME_SYLLABLES:
            return False
        entry = Entry(entry.entity, entry.value, tokens, entry.priority)
        key = (entry.entity, entry.value, tokens)
        if key in self._seen:
            return False
        self._seen.add(key)
        index = len(self.entries)
        self.entries.append(entry)
        lemmas = tuple(strip_diacritics(t) for t in tokens)
        self.vocabulary.update(lemmas)
        self._exact.setdefault(lemmas, []).append(index)
        if len(tokens) >= MIN_FUZZY_SYLLABLES:
            for j in range(len(tokens)):
                self._wildcard.setdefault((j, lemmas[:j] + lemmas[j + 1 :]), []).append(index)
        if len(tokens) not in self._lengths:
            self._lengths.append(len(tokens))
            self._lengths.sort(reverse=True)
        return True

    def add_name(
        self,
        entity: str,
        value: str,
        name: str,
        priority: int = 0,
        abbreviations: Mapping[str, str] | None = None,
    ) -> bool:
        """Normalises and tokenises ``name`` the way messages are, then adds it."""
        tokens = tuple(s.text for s in syllables(name, abbreviations))
        return self.add(Entry(entity, value, tokens, priority))

    def values(self, entity: str) -> set[str]:
        """All values known for one entity type."""
        return {e.value for e in self.entries if e.entity == entity}

    # ------------------------------------------------------------------

    def match(self, tokens: Sequence[str]) -> list[Match]:
        """Finds names in normalised syllables, longest first, without overlaps, in text order.

        The longest name at each position is a candidate; where candidates overlap the longer one wins
        ("xin giấy xác nhận tình trạng hôn nhân" is the marital-status certificate, not "xin giấy xác nhận"),
        and between equally long ones the leftmost.
        """
        texts = [fold_i_y(t) for t in tokens]
        lemmas = [strip_diacritics(t) for t in texts]
        candidates: list[Match] = []
        for i in range(len(texts)):
            for length in self._lengths:
                if i + length > len(texts):
                    continue
                match = self._exact_at(texts, lemmas, i, length)
                if match is None and self.fuzzy and length >= MIN_FUZZY_SYLLABLES:
                    match = self._fuzzy_at(texts, lemmas, i, length)
                if match is not None:
                    candidates.append(match)
                    break
        taken = [False] * len(texts)
        found: list[Match] = []
        for match in sorted(candidates, key=lambda m: (m.first - m.last, m.first)):
            if not any(taken[match.first : match.last]):
                taken[match.first : match.last] = [True] * (match.last - match.first)
                found.append(match)
        return sorted(found, key=lambda m: m.first)

    def without_redundant_groups(self, matches: list[Match]) -> list[Match]:
        """Drops a group when the same message also names one of its procedures.

        "giấy tờ hộ tịch ... cải chính hộ tịch" is about cai_chinh_ho_tich, not
        about the ho_tich group.
        """
        named = {m.value for m in matches if m.entity == PROCEDURE}
        return [
            m
            for m in matches
            if not (m.entity == PROCEDURE and m.value in self.groups and named & set(self.groups[m.value]))
        ]

    def _best(self, candidates: list[tuple[int, int]]) -> Entry:
        # candidates are (accent agreement, index): priority first (a catalog
        # name beats an editor's example), then agreeing accents, then the first added
        _, index = max(candidates, key=lambda c: (self.entries[c[1]].priority, c[0], -c[1]))
        return self.entries[index]

    def _exact_at(self, texts: list[str], lemmas: list[str], i: int, length: int) -> Match | None:
        indexes = self._exact.get(tuple(lemmas[i : i + length]))
        if not indexes:
            return None
        window = texts[i : i + length]
        candidates = []
        for index in indexes:
            names = self.entries[index].tokens
            if all(accents_compatible(t, n) for t, n in zip(window, names, strict=True)):
                candidates.append((sum(t == n for t, n in zip(window, names, strict=True)), index))
        if not candidates:
            return None
        entry = self._best(candidates)
        return Match(entry.entity, entry.value, i, i + length, True)

    def _fuzzy_at(self, texts: list[str], lemmas: list[str], i: int, length: int) -> Match | None:
        window = texts[i : i + length]
        window_lemmas = lemmas[i : i + length]
        candidates = []
        for j in range(length):
            typed = window_lemmas[j]
            indexes = self._wildcard.get((j, tuple(window_lemmas[:j] + window_lemmas[j + 1 :])))
            if not indexes:
                continue
            for index in indexes:
                names = self.entries[index].tokens
                if len(names) != length:
                    continue
                pairs = zip(window, names, strict=True)
                if not all(accents_compatible(t, n) for k, (t, n) in enumerate(pairs) if k != j):
                    continue
                wanted = strip_diacritics(names[j])
                if typed == wanted:
                    ok = True  # same letters, different accents: "cắn cước"
                else:
                    ok = (
                        # a known word is not a typo ("kết hợp" is not "kết hôn"),
                        # unless no Vietnamese syllable is spelt that way ("đăg")
                        (typed not in self.vocabulary or not looks_like_syllable(typed))
                        and len(typed) >= 2
                        and not any(ch.isdigit() for ch in typed + wanted)
                        and _within_one_edit(typed, wanted)
                    )
                if ok:
                    candidates.append((sum(t == n for t, n in zip(window, names, strict=True)), index))
        if not candidates:
            return None
        entry = self._best(candidates)
        return Match(entry.entity, entry.value, i, i + length, False)

    # ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (see :meth:`from_dict`)."""
        return {
            "entries": [[e.entity, e.value, list(e.tokens), e.priority] for e in self.entries],
            "vocabulary": sorted(self.vocabulary),
            "fuzzy": self.fuzzy,
            "groups": self.groups,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gazetteer:
        """Rebuilds a gazetteer stored by :meth:`to_dict`."""
        entries = [Entry(str(e[0]), str(e[1]), tuple(e[2]), int(e[3])) for e in data.get("entries", [])]
        return cls(entries, data.get("vocabulary", []), bool(data.get("fuzzy", True)), data.get("groups") or {})


# --------------------------------------------------------------------------
# Places
# --------------------------------------------------------------------------

# accent-free prefix → the ways people write it (after normalisation)
_ADMIN_PREFIXES: list[tuple[tuple[str, ...], list[tuple[str, ...]]]] = [
    (("thi", "tran"), [("thị", "trấn"), ("tt",)]),
    (("thi", "xa"), [("thị", "xã"), ("tx",)]),
    (("thanh", "pho"), [("thành", "phố"), ("tp",)]),
    (("dac", "khu"), [("đặc", "khu")]),
    (("phuong",), [("phường",), ("p",)]),
    (("xa",), [("xã",), ("x",)]),
    (("quan",), [("quận",), ("q",)]),
    (("huyen",), [("huyện",), ("h",)]),
]


def place_variants(
    name: str, abbreviations: Mapping[str, str] | None = None
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]]]:
    """Ways to write an administrative unit's name.

    Returns:
        (with a prefix, without it): "Phường Hoàn Kiếm" gives "phường hoàn
        kiếm", "p hoàn kiếm" and bare "hoàn kiếm"; "Quận 1" gives "quận 1",
        "q 1", "q1" but no bare "1". Bare names need two syllables or more.
    """
    tokens = tuple(s.text for s in syllables(name, abbreviations))
    lemmas = tuple(strip_diacritics(t) for t in tokens)
    for prefix, spellings in _ADMIN_PREFIXES:
        if lemmas[: len(prefix)] == prefix and len(tokens) > len(prefix):
            rest = tokens[len(prefix) :]
            prefixed = [tuple(spelling) + rest for spelling in spellings]
            if len(rest) == 1 and rest[0].isdigit():
                short = [spelling[0] for spelling in spellings if len(spelling) == 1 and len(spelling[0]) <= 2]
                prefixed += [(spelling + rest[0],) for spelling in short]  # "q1", "p12"
            bare = [rest] if len(rest) >= 2 and not all(t.isdigit() for t in rest) else []
            return prefixed, bare
    return ([tokens] if tokens else []), []


_NUMBERED_UNIT = re.compile(r"(?:p|q)([0-9]+)")


def place_key(name: str) -> str:
    """Compares places: accent-free, lower case, without an administrative prefix.

    "Phường Hải Châu", "p. hai chau" and "Hai Chau" all give "hai chau"; "Quận 1" and "q1" give "1".
    """
    lemmas = [strip_diacritics(s.text) for s in syllables(name)]
    for prefix, spellings in _ADMIN_PREFIXES:
        forms = [prefix] + [tuple(strip_diacritics(t) for t in spelling) for spelling in spellings]
        form = next((f for f in forms if tuple(lemmas[: len(f)]) == f and len(lemmas) > len(f)), None)
        if form is not None:
            lemmas = lemmas[len(form) :]
            break
    if len(lemmas) == 1:
        numbered = _NUMBERED_UNIT.fullmatch(lemmas[0])
        if numbered:
            lemmas = [numbered.group(1)]
    return " ".join(lemmas)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    import yaml  # lazily: only the file readers need PyYAML

    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise CatalogError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v.strip()]
    return []


def read_catalog_names(
    catalog_dir: Path,
) -> tuple[list[tuple[str, str, str, int]], dict[str, list[str]], list[str]]:
    """Reads procedure and group names from ``catalog_dir``.

    Returns:
        ``[(entity, value, name, priority)]``, group id → choices, and warnings
        (missing folder, entries without an id).

    Raises:
        CatalogError: a file is not valid YAML.
    """
    names: list[tuple[str, str, str, int]] = []
    groups: dict[str, list[str]] = {}
    warnings: list[str] = []
    if not catalog_dir.is_dir():
        return names, groups, [f"catalog folder '{catalog_dir}' not found; no procedure names"]
    files = sorted(p for p in catalog_dir.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())
    for path in files:
        data = _load_yaml(path)
        if not isinstance(data, dict):
            continue
        if path.stem == "_groups":
            for group in data.get("groups") or []:
                if not isinstance(group, dict) or not isinstance(group.get("id"), str):
                    warnings.append(f"{path}: a group without an id is ignored")
                    continue
                groups[group["id"]] = _strings(group.get("choices"))
                for name in _strings(group.get("names")):
                    names.append((PROCEDURE, group["id"], name, PRIORITY_GROUP))
            continue
        for procedure in data.get("procedures") or []:
            if not isinstance(procedure, dict) or not isinstance(procedure.get("id"), str):
                warnings.append(f"{path}: a procedure without an id is ignored")
                continue
            for name in _strings(procedure.get("name")) + _strings(procedure.get("aliases")):
                names.append((PROCEDURE, procedure["id"], name, PRIORITY_PROCEDURE))
    return names, groups, warnings


def read_place_names(path: Path) -> tuple[list[tuple[str, int, int]], list[str]]:
    """Reads ward and former-district names from the post-office directory.

    Returns:
        ``[(canonical name, priority with prefix, priority bare)]`` and warnings.
    """
    if not path.is_file():
        return [], [f"post-office file '{path}' not found; no place names"]
    data = _load_yaml(path)
    offices = data.get("post_offices") if isinstance(data, dict) else None
    result: list[tuple[str, int, int]] = []
    seen: set[str] = set()
    for office in offices or []:
        if not isinstance(office, dict):
            continue
        for key, prefixed, bare in (
            ("ward", PRIORITY_WARD, PRIORITY_WARD_BARE),
            ("old_district", PRIORITY_DISTRICT, PRIORITY_DISTRICT_BARE),
        ):
            name = office.get(key)
            if isinstance(name, str) and name.strip() and name.strip() not in seen:
                seen.add(name.strip())
                result.append((name.strip(), prefixed, bare))
    return result, []


def build_gazetteer(
    catalog_dir: Path | None,
    post_offices_file: Path | None,
    abbreviations: Mapping[str, str] | None = None,
    fuzzy: bool = True,
) -> tuple[Gazetteer, list[str]]:
    """Builds the procedure and place gazetteer from the project's YAML files."""
    gazetteer = Gazetteer(fuzzy=fuzzy)
    warnings: list[str] = []
    if catalog_dir is not None:
        names, groups, more = read_catalog_names(catalog_dir)
        gazetteer.groups.update(groups)
        warnings += more
        for entity, value, name, priority in names:
            gazetteer.add_name(entity, value, name, priority, abbreviations)
    if post_offices_file is not None:
        places, more = read_place_names(post_offices_file)
        warnings += more
        for name, prefixed_priority, bare_priority in places:
            prefixed, bare = place_variants(name, abbreviations)
            for tokens in prefixed:
                gazetteer.add(Entry(LOCATION, name, tokens, prefixed_priority))
            for tokens in bare:
                gazetteer.add(Entry(LOCATION, name, tokens, bare_priority))
    return gazetteer, warnings
