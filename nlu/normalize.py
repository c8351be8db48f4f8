"""Vietnamese text normalisation for dvcbot's NLU.

Pure functions, standard library only (PyYAML is imported lazily by
:func:`load_abbreviations`), so the same code runs inside Rasa's Python 3.10
virtualenv and in the project's Python 3.11+ virtualenv.

``normalize`` turns what citizens type into one canonical form:

* Unicode NFC; zero-width, format and control characters removed (line breaks
  and tabs count as spaces); whitespace folded to single spaces;
* one tone-mark placement: "hoà"/"hòa", "thuỷ"/"thủy", "khoẻ"/"khỏe",
  "qúy"/"quý" all become the second spelling (tone on the first vowel of an
  open "oa/oe/uy", with "qu" and "gi" counted as initial consonants);
* lower case; runs of "?", "!", ",", ";", ":", "~" folded to one, four or more
  dots to "...";
* abbreviations and chat teencode expanded word by word from a dictionary
  (``data/lexicon/abbreviations.yml``), longest key first.

Dossier codes (Circular 01/2018/TT-VPCP, e.g. ``000.00.04.H51-200221-0001``),
numbers (phone numbers, dates, ages), e-mail addresses and URLs are protected:
nothing inside them is rewritten, except that a dossier code is written in its
canonical upper-case form. ``normalize_with_offsets`` and ``syllables`` also
say which characters of the original text each output character came from,
which the Rasa tokenizer needs for entity offsets.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

__all__ = [
    "LexiconError",
    "NormalizedText",
    "Syllable",
    "canonical_dossier_code",
    "find_dossier_codes",
    "load_abbreviations",
    "looks_like_syllable",
    "normalize",
    "normalize_with_offsets",
    "strip_diacritics",
    "syllables",
]

# --------------------------------------------------------------------------
# Character classes
# --------------------------------------------------------------------------

_GRAVE, _ACUTE, _TILDE, _HOOK, _DOT = "\u0300", "\u0301", "\u0303", "\u0309", "\u0323"
_TONE_MARKS = frozenset((_GRAVE, _ACUTE, _TILDE, _HOOK, _DOT))
# circumflex, breve, horn: they make a different vowel, not a different tone
_QUALITY_MARKS = frozenset(("\u0302", "\u0306", "\u031b"))
_MARKED_VOWELS = frozenset("ăâêôơư")

_REMOVED_CATEGORIES = frozenset(("Cc", "Cf", "Cs"))

# Combining marks that may be left over after NFC; they belong to the word
# they follow.
_MARKS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
_WORD_RE = re.compile(rf"[\w{_MARKS}]+")
_LETTERS_RE = re.compile(rf"(?:[^\W\d_]|[{_MARKS}])+")
_TOKEN_RE = re.compile(rf"[\w{_MARKS}]+|[^\w\s{_MARKS}]")
_RAW_WORD_RE = re.compile(r"\S+")

_SYLLABLE_RE = re.compile(
    r"(ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|[bcdđghklmnprstvx])?"
    r"([aăâeêioôơuưy]{1,3})"
    r"(ch|nh|ng|[cmnpt])?"
)

# --------------------------------------------------------------------------
# Protected spans
# --------------------------------------------------------------------------

_D = "[0-9oO]"
_DOT_SEP = r"\s*\.\s*"
_DASH_SEP = r"\s*[-\u2010\u2011\u2012\u2013\u2014]\s*"
_NOT_AFTER_WORD = rf"(?<![\w{_MARKS}])"  # a combining mark counts as part of a word
_NOT_BEFORE_WORD = rf"(?![\w{_MARKS}])"
DOSSIER_CODE_RE = re.compile(
    rf"{_NOT_AFTER_WORD}(?<!\.)({_D}{{3}}){_DOT_SEP}({_D}{{2}}){_DOT_SEP}({_D}{{2}}){_DOT_SEP}"
    rf"([A-Za-z])\s?({_D}{{2}}){_DASH_SEP}({_D}{{6}}){_DASH_SEP}({_D}{{4}}){_NOT_BEFORE_WORD}"
)
"""A dossier code, tolerant of spaces around separators, lower case and O for 0."""

_URL_RE = re.compile(rf"(?i){_NOT_AFTER_WORD}(?<!@)(?:(?:https?|ftp)://|www\.)[^\s<>\"']+")
_BARE_DOMAIN_RE = re.compile(
    rf"(?i){_NOT_AFTER_WORD}(?<![@.\-])(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+"
    rf"(?:vn|com|net|org|gov|edu|info|io|me|app|biz)(?![\w{_MARKS}@])(?:/[^\s<>\"']*)?"
)
_EMAIL_RE = re.compile(rf"{_NOT_AFTER_WORD}(?<![.+\-])[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_NUMBER_RE = re.compile(rf"{_NOT_AFTER_WORD}\d+(?:[.,/:\-]\d+)*{_NOT_BEFORE_WORD}")
_URL_TRAILING = ".,;:!?)]}'\"\u2026"

_PUNCT_RUN_RE = re.compile(r"([?!,;:~])\1+|\.{4,}")

TEXT, CODE, NUMBER, URL, EMAIL = "text", "code", "number", "url", "email"
_PROTECTED = frozenset((CODE, NUMBER, URL, EMAIL))


class LexiconError(ValueError):
    """A malformed abbreviation dictionary; the message has ``path:line: ...`` lines."""


# --------------------------------------------------------------------------
# Small pure helpers
# --------------------------------------------------------------------------


def strip_diacritics(text: str) -> str:
    """Removes every tone and vowel mark; "đ" becomes "d" and "Đ" becomes "D"."""
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    bare = "".join(ch for ch in decomposed if not "\u0300" <= ch <= "\u036f")
    return unicodedata.normalize("NFC", bare).replace("đ", "d").replace("Đ", "D")


def looks_like_syllable(word: str) -> bool:
    """True if ``word`` (lower case, with or without marks) has the shape of a Vietnamese syllable."""
    return _SYLLABLE_RE.fullmatch(strip_diacritics(word)) is not None


def canonical_dossier_code(match: re.Match[str]) -> str:
    """Returns the canonical upper-case form of a :data:`DOSSIER_CODE_RE` match."""
    g = [part.replace("o", "0").replace("O", "0") for part in match.groups()]
    return f"{g[0]}.{g[1]}.{g[2]}.{match.group(4).upper()}{g[4]}-{g[5]}-{g[6]}"


def find_dossier_codes(text: str) -> list[tuple[int, int, str]]:
    """Finds dossier codes in ``text`` as ``(start, end, canonical code)``."""
    return [(m.start(), m.end(), canonical_dossier_code(m)) for m in DOSSIER_CODE_RE.finditer(text)]


@functools.lru_cache(maxsize=4096)
def _place_tone(word: str) -> str:
    """Moves the tone mark of one lower-case syllable to its canonical vowel."""
    if word.isascii():
        return word
    decomposed = unicodedata.normalize("NFD", word)
    tones = [ch for ch in decomposed if ch in _TONE_MARKS]
    if len(tones) != 1:
        return word
    bare = unicodedata.normalize("NFC", decomposed.replace(tones[0], ""))
    match = _SYLLABLE_RE.fullmatch(bare)
    if match is None:
        return word
    onset, nucleus, coda = match.group(1) or "", match.group(2), match.group(3)
    marked = [i for i, ch in enumerate(nucleus) if ch in _MARKED_VOWELS]
    if marked:
        index = marked[-1]  # "ươ" → ơ, "uyê" → ê
    elif coda or len(nucleus) == 1:
        index = len(nucleus) - 1  # "hoàn", "quỳnh"
    elif len(nucleus) == 2:
        index = 0  # "hòa", "khỏe", "thủy", "mùa"
    else:
        index = 1  # "ngoài", "khuỷu"
    pos = len(onset) + index
    toned = unicodedata.normalize("NFC", unicodedata.normalize("NFD", bare[pos]) + tones[0])
    result = bare[:pos] + toned + bare[pos + 1 :]
    return result if len(result) == len(word) else word


# --------------------------------------------------------------------------
# Character arrays with offsets into the original text
# --------------------------------------------------------------------------


@dataclass
class _Chars:
    text: str
    starts: list[int]
    ends: list[int]


def _clean(text: str) -> _Chars:
    """NFC, removes control/format characters, folds whitespace; keeps offsets."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    previous_end: int | None = None
    for raw in _RAW_WORD_RE.finditer(text):
        kept = [
            (i, ch)
            for i, ch in enumerate(raw.group(), raw.start())
            if unicodedata.category(ch) not in _REMOVED_CATEGORIES
        ]
        if not kept:
            continue
        clusters: list[list[tuple[int, str]]] = []
        for item in kept:
            if clusters and unicodedata.combining(item[1]):
                clusters[-1].append(item)
            else:
                clusters.append([item])
        pieces = [(unicodedata.normalize("NFC", "".join(ch for _, ch in c)), c[0][0], c[-1][0] + 1) for c in clusters]
        whole = unicodedata.normalize("NFC", "".join(ch for _, ch in kept))
        if "".join(p[0] for p in pieces) != whole:
            pieces = [(whole, kept[0][0], kept[-1][0] + 1)]
        if previous_end is not None:
            out.append(" ")
            starts.append(previous_end)
            ends.append(pieces[0][1])
        for piece, start, end in pieces:
            for ch in piece:
                out.append(ch)
                starts.append(start)
                ends.append(end)
        previous_end = pieces[-1][2]
    return _Chars("".join(out), starts, ends)


def _find_protected(text: str) -> list[tuple[int, int, str, str | None]]:
    """Returns non-overlapping protected spans ``(start, end, kind, replacement)``."""
    found: list[tuple[int, int, str, str | None]] = []
    taken = bytearray(len(text))

    def claim(start: int, end: int, kind: str, replacement: str | None = None) -> None:
        if end > start and not any(taken[start:end]):
            taken[start:end] = b"\x01" * (end - start)
            found.append((start, end, kind, replacement))

    if "." in text or "/" in text:
        for regex in (_URL_RE, _BARE_DOMAIN_RE):
            for m in regex.finditer(text):
                end = m.end()
                while end > m.start() and text[end - 1] in _URL_TRAILING:
                    end -= 1
                claim(m.start(), end, URL)
    if "@" in text:
        for m in _EMAIL_RE.finditer(text):
            claim(m.start(), m.end(), EMAIL)
    for m in DOSSIER_CODE_RE.finditer(text):
        claim(m.start(), m.end(), CODE, canonical_dossier_code(m))
    for m in _NUMBER_RE.finditer(text):
        claim(m.start(), m.end(), NUMBER)
    found.sort()
    return found


def _lower(chars: _Chars) -> _Chars:
    lowered = unicodedata.normalize("NFC", chars.text.lower())
    if len(lowered) == len(chars.text):
        return _Chars(lowered, chars.starts, chars.ends)
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for ch, start, end in zip(chars.text, chars.starts, chars.ends, strict=True):
        low = ch.lower()
        out.append(low)
        starts.extend([start] * len(low))
        ends.extend([end] * len(low))
    joined = "".join(out)
    if unicodedata.normalize("NFC", joined) != joined:
        # Rare (e.g. "İ" before a combining mark): keep coarse offsets.
        start, end = chars.starts[0], chars.ends[-1]
        return _Chars(lowered, [start] * len(lowered), [end] * len(lowered))
    return _Chars(joined, starts, ends)


def _place_tones(chars: _Chars) -> _Chars:
    def fix(m: re.Match[str]) -> str:
        return _place_tone(m.group())

    return _Chars(_LETTERS_RE.sub(fix, chars.text), chars.starts, chars.ends)


def _fold_punctuation(chars: _Chars) -> _Chars:
    text = chars.text
    if _PUNCT_RUN_RE.search(text) is None:
        return chars
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    for m in _PUNCT_RUN_RE.finditer(text):
        out.append(text[pos : m.start()])
        starts.extend(chars.starts[pos : m.start()])
        ends.extend(chars.ends[pos : m.start()])
        replacement = "..." if m.group().startswith(".") else m.group(1)
        out.append(replacement)
        starts.extend([chars.starts[m.start()]] * len(replacement))
        ends.extend([chars.ends[m.end() - 1]] * len(replacement))
        pos = m.end()
    out.append(text[pos:])
    starts.extend(chars.starts[pos:])
    ends.extend(chars.ends[pos:])
    return _Chars("".join(out), starts, ends)


# --------------------------------------------------------------------------
# Abbreviations
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Lexicon:
    by_first: Mapping[str, Sequence[tuple[tuple[str, ...], str]]]


def _key_tokens(key: str) -> tuple[str, ...]:
    return tuple(_TOKEN_RE.findall(key))


@functools.lru_cache(maxsize=32)
def _compile(items: tuple[tuple[str, str], ...]) -> _Lexicon:
    by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for key, value in items:
        tokens = _key_tokens(normalize(key))
        norm_value = normalize(value)
        if not tokens or not norm_value or not _WORD_RE.fullmatch(tokens[0]):
            continue
        if not _WORD_RE.fullmatch(tokens[-1]):
            continue
        by_first.setdefault(tokens[0], []).append((tokens, norm_value))
    for options in by_first.values():
        options.sort(key=lambda option: -len(option[0]))
    return _Lexicon(by_first)


def _lexicon(abbreviations: Mapping[str, str] | None) -> _Lexicon | None:
    if not abbreviations:
        return None
    items = tuple((k, v) for k, v in abbreviations.items() if isinstance(k, str) and isinstance(v, str))
    return _compile(items) if items else None


def _expand(
    chars: _Chars,
    lexicon: _Lexicon,
    previous_kind: str | None,
    next_kind: str | None,
) -> _Chars:
    """Replaces dictionary keys in one unprotected region."""
    text = chars.text
    tokens = list(_TOKEN_RE.finditer(text))
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    pos = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        word = token.group()
        options = lexicon.by_first.get(word)
        if not options or not _LETTERS_RE.fullmatch(word):
            i += 1
            continue
        gap_before = text[tokens[i - 1].end() : token.start()] if i else text[: token.start()]
        if i == 0 and not gap_before and previous_kind in _PROTECTED:
            i += 1  # glued to a number, code, URL or e-mail
            continue
        after_number = bool(gap_before) and (
            (i > 0 and any(ch.isdigit() for ch in tokens[i - 1].group()))
            or (i == 0 and previous_kind in (NUMBER, CODE))
        )
        chosen = None
        for key, value in options:
            last = i + len(key) - 1
            if last >= len(tokens):
                continue
            if any(tokens[i + k].group() != key[k] for k in range(1, len(key))):
                continue
            if last == len(tokens) - 1 and tokens[last].end() == len(text) and next_kind in _PROTECTED:
                continue
            if len(key) == 1 and len(word) == 1 and after_number:
                continue  # "50 k", "220 v": a unit, not teencode
            chosen = (key, value, last)
            break
        if chosen is None:
            i += 1
            continue
        key, value, last = chosen
        start, end = token.start(), tokens[last].end()
        out.append(text[pos:start])
        starts.extend(chars.starts[pos:start])
        ends.extend(chars.ends[pos:start])
        _emit_value(value, chars, start, end, out, starts, ends)
        pos = end
        i = last + 1
    if pos == 0:
        return chars
    out.append(text[pos:])
    starts.extend(chars.starts[pos:])
    ends.extend(chars.ends[pos:])
    return _Chars("".join(out), starts, ends)


def _emit_value(
    value: str,
    chars: _Chars,
    start: int,
    end: int,
    out: list[str],
    starts: list[int],
    ends: list[int],
) -> None:
    """Appends ``value``, sharing the key's original span out among its words."""
    positions = [p for p in range(start, end) if not chars.text[p].isspace()] or [start]
    words = list(_WORD_RE.finditer(value))
    n, m = max(len(words), 1), len(positions)
    parts = []
    for k in range(n):
        first = min(k * m // n, m - 1)
        last = max(first, (k + 1) * m // n - 1)
        parts.append((chars.starts[positions[first]], chars.ends[positions[last]]))
    word_index = 0
    for offset, ch in enumerate(value):
        while word_index + 1 < len(words) and offset >= words[word_index + 1].start():
            word_index += 1
        span = parts[min(word_index, n - 1)]
        out.append(ch)
        starts.append(span[0])
        ends.append(span[1])


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class NormalizedText:
    """Normalised text with, for each character, its span in the original text."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    regions: tuple[tuple[str, int, int], ...]
    """``(kind, start, end)`` in ``text``; kind is text, code, number, url or email."""

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Maps ``text[start:end]`` (non-empty) back to the original text."""
        return self.starts[start], self.ends[end - 1]


def normalize_with_offsets(text: str, abbreviations: Mapping[str, str] | None = None) -> NormalizedText:
    """Like :func:`normalize`, also returning where each character came from."""
    if not isinstance(text, str) or not text:
        return NormalizedText("", (), (), ())
    cleaned = _clean(text)
    lexicon = _lexicon(abbreviations)
    protected = _find_protected(cleaned.text)

    regions: list[tuple[str, _Chars]] = []
    pos = 0

    def sub(start: int, end: int) -> _Chars:
        return _Chars(cleaned.text[start:end], cleaned.starts[start:end], cleaned.ends[start:end])

    for start, end, kind, replacement in protected:
        if start > pos:
            regions.append((TEXT, sub(pos, start)))
        chars = sub(start, end)
        if replacement is not None:
            keep = [k for k, ch in enumerate(chars.text) if not ch.isspace()]
            if len(keep) == len(replacement):
                chars = _Chars(
                    replacement,
                    [chars.starts[k] for k in keep],
                    [chars.ends[k] for k in keep],
                )
            else:
                chars = _Chars(replacement, [chars.starts[0]] * len(replacement), [chars.ends[-1]] * len(replacement))
        regions.append((kind, chars))
        pos = end
    if pos < len(cleaned.text):
        regions.append((TEXT, sub(pos, len(cleaned.text))))

    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    spans: list[tuple[str, int, int]] = []
    for index, (kind, chars) in enumerate(regions):
        if kind == TEXT:
            chars = _fold_punctuation(_place_tones(_lower(chars)))
            if lexicon is not None:
                previous_kind = regions[index - 1][0] if index else None
                next_kind = regions[index + 1][0] if index + 1 < len(regions) else None
                chars = _expand(chars, lexicon, previous_kind, next_kind)
        offset = len(starts)
        spans.append((kind, offset, offset + len(chars.text)))
        out.append(chars.text)
        starts.extend(chars.starts)
        ends.extend(chars.ends)
    return NormalizedText("".join(out), tuple(starts), tuple(ends), tuple(spans))


def normalize(text: str, abbreviations: Mapping[str, str] | None = None) -> str:
    """Returns the canonical form of a citizen's message (see the module docstring).

    Args:
        text: any string; non-strings and empty strings give "".
        abbreviations: lower-case key → expansion, e.g. from
            :func:`load_abbreviations`. Keys may span several words.
    """
    return normalize_with_offsets(text, abbreviations).text


class Syllable(NamedTuple):
    """One token of normalised text with its span in the original text."""

    text: str
    lemma: str
    start: int
    end: int
    kind: str


def syllables(text: str, abbreviations: Mapping[str, str] | None = None) -> list[Syllable]:
    """Splits normalised text into syllables; codes, numbers, URLs and e-mails stay whole.

    Punctuation and emoji are dropped. Offsets point into the original ``text``
    and never decrease.
    """
    normalized = normalize_with_offsets(text, abbreviations)
    return syllables_of(normalized)


def syllables_of(normalized: NormalizedText) -> list[Syllable]:
    """Tokenises an already normalised text (see :func:`syllables`)."""
    result: list[Syllable] = []
    for kind, start, end in normalized.regions:
        if start == end:
            continue
        if kind != TEXT:
            piece = normalized.text[start:end]
            s, e = normalized.span(start, end)
            result.append(Syllable(piece, strip_diacritics(piece), s, e, kind))
            continue
        for m in _WORD_RE.finditer(normalized.text, start, end):
            s, e = normalized.span(m.start(), m.end())
            result.append(Syllable(m.group(), strip_diacritics(m.group()), s, e, "word"))
    return result


# --------------------------------------------------------------------------
# Dictionary loader
# --------------------------------------------------------------------------

_KEY_CHARS_RE = re.compile(rf"[^\W\d_](?:[^\W\d_]|[{_MARKS}./ \-])*")
_VALUE_CHARS_RE = re.compile(rf"[^\W\d_](?:[^\W\d_]|[{_MARKS} /\-().,])*")


def load_abbreviations(path: str) -> dict[str, str]:
    """Reads ``abbreviations:`` from a YAML dictionary file.

    Returns:
        normalised key → normalised expansion.

    Raises:
        LexiconError: one ``path:line: message`` line per problem (duplicate
            key, empty value, key with spaces at its ends, non-string key or
            value, key/value that would make normalisation unstable).
        OSError: the file cannot be read.
    """
    import yaml  # lazily: only the loader needs PyYAML

    with open(path, encoding="utf-8") as handle:
        source = handle.read()
    try:
        root = yaml.compose(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise LexiconError(f"{path}:{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc

    errors: list[str] = []

    def fail(node: object, message: str) -> None:
        mark = getattr(node, "start_mark", None)
        line = mark.line + 1 if mark is not None else 1
        errors.append(f"{path}:{line}: {message}")

    if root is None:
        raise LexiconError(f"{path}:1: empty file; expected a mapping 'abbreviations:'")
    if not isinstance(root, yaml.MappingNode):
        raise LexiconError(f"{path}:{root.start_mark.line + 1}: expected a mapping with key 'abbreviations'")
    section = None
    for key_node, value_node in root.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == "abbreviations":
            section = value_node
    if section is None:
        raise LexiconError(f"{path}:1: missing top-level key 'abbreviations'")
    if isinstance(section, yaml.ScalarNode) and section.tag.endswith(":null"):
        return {}
    if not isinstance(section, yaml.MappingNode):
        raise LexiconError(f"{path}:{section.start_mark.line + 1}: 'abbreviations' must be a mapping")

    str_tag = "tag:yaml.org,2002:str"
    entries: list[tuple[str, str, object]] = []
    seen: dict[str, int] = {}
    for key_node, value_node in section.value:
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != str_tag:
            fail(key_node, f"key {_describe(key_node)} is not a string; quote it")
            continue
        raw_key = key_node.value
        if raw_key != raw_key.strip():
            fail(key_node, f"key {raw_key!r} has spaces at its ends")
            continue
        if not raw_key:
            fail(key_node, "empty key")
            continue
        if not isinstance(value_node, yaml.ScalarNode) or value_node.tag != str_tag:
            if isinstance(value_node, yaml.ScalarNode) and value_node.tag.endswith(":null"):
                fail(value_node, f"key {raw_key!r} has an empty value")
            else:
                fail(value_node, f"value of {raw_key!r} ({_describe(value_node)}) is not a string; quote it")
            continue
        raw_value = value_node.value
        if not raw_value.strip():
            fail(value_node, f"key {raw_key!r} has an empty value")
            continue
        if raw_key != raw_key.lower():
            fail(key_node, f"key {raw_key!r} must be written in lower case")
            continue
        if not _KEY_CHARS_RE.fullmatch(raw_key) or "  " in raw_key:
            fail(key_node, f"key {raw_key!r} may only hold letters, spaces, '.', '/' and '-', no digits")
            continue
        if not _VALUE_CHARS_RE.fullmatch(raw_value.strip()) or not raw_value.strip()[-1].isalpha():
            fail(value_node, f"value {raw_value!r} must be words (no digits, '@' or links), ending with a letter")
            continue
        key = normalize(raw_key)
        value = normalize(raw_value)
        if key in seen:
            fail(key_node, f"duplicate key {raw_key!r} (first on line {seen[key]})")
            continue
        seen[key] = key_node.start_mark.line + 1
        entries.append((key, value, key_node))

    result = {key: value for key, value, _ in entries}
    # A value must not contain a key, or normalising twice would expand it again.
    single = {key for key in result if len(_key_tokens(key)) == 1}
    multi = [(key, _key_tokens(key), node) for key, _, node in entries if len(_key_tokens(key)) > 1]
    value_tokens = {key: _key_tokens(value) for key, value in result.items()}
    for key, _, node in entries:
        clash = sorted({t for t in value_tokens[key] if t in single})
        if clash:
            fail(node, f"value of {key!r} contains key(s) {', '.join(clash)} that would be expanded again")
    for key, tokens, node in multi:
        for cut in range(1, len(tokens)):
            head, tail = tokens[:cut], tokens[cut:]
            for other, vt in value_tokens.items():
                if vt[-len(head) :] == head or vt[: len(tail)] == tail:
                    fail(node, f"key {key!r} could be formed again next to the value of {other!r}")
    if errors:
        raise LexiconError("\n".join(errors))
    return result


def _describe(node: object) -> str:
    tag = getattr(node, "tag", "")
    value = getattr(node, "value", None)
    kind = tag.rsplit(":", 1)[-1] if tag else type(node).__name__
    return f"{value!r} read as {kind}" if isinstance(value, str) else kind


def iter_words(text: str) -> Iterable[str]:
    """Yields the word runs of ``text`` (letters, digits and combining marks)."""
    return (m.group() for m in _WORD_RE.finditer(text))
