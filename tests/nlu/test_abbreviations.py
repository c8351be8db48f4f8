"""Tests of the abbreviation dictionary file and its loader."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.normalize import LexiconError, load_abbreviations, normalize

DICTIONARY = Path(__file__).resolve().parents[2] / "data" / "lexicon" / "abbreviations.yml"


def write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "abbreviations.yml"
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_project_dictionary_is_valid_and_large_enough(abbreviations: dict[str, str]) -> None:
    assert len(abbreviations) >= 80
    for required in ["ko", "k", "dc", "đc", "j", "cccd", "gplx", "hs", "ad", "sđt", "ubnd", "bhyt", "gks"]:
        assert required in abbreviations
    # real unaccented words and names people keep as they are must not be keys
    for forbidden in ["ma", "da", "co", "gi", "sổ đỏ", "vneid", "ok"]:
        assert forbidden not in abbreviations


def test_every_entry_expands_and_is_stable(abbreviations: dict[str, str]) -> None:
    for key, value in abbreviations.items():
        assert normalize(key, abbreviations) == value, key
        assert normalize(value, abbreviations) == value, key
        sentence = f"cho hỏi {key} ạ"
        once = normalize(sentence, abbreviations)
        assert once == f"cho hỏi {value} ạ"
        assert normalize(once, abbreviations) == once


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("abbreviations:\n  ko: không\n  ko: có\n", ":3: duplicate key 'ko' (first on line 2)"),
        ("abbreviations:\n  ko: không\n  dc:\n", ":3: key 'dc' has an empty value"),
        ("abbreviations:\n  dc: ''\n", ":2: key 'dc' has an empty value"),
        ("abbreviations:\n  ' ko': không\n", ":2: key ' ko' has spaces at its ends"),
        ("abbreviations:\n  yes: có\n", ":2: key 'yes' read as bool is not a string; quote it"),
        ("abbreviations:\n  ko: 0\n", ":2: value of 'ko' ('0' read as int) is not a string; quote it"),
        ("abbreviations:\n  ko: [không]\n", ":2: value of 'ko' (seq) is not a string; quote it"),
        ("abbreviations:\n  Ko: không\n", ":2: key 'Ko' must be written in lower case"),
        ("abbreviations:\n  k2: không\n", ":2: key 'k2' may only hold letters"),
        ("abbreviations:\n  ko: không\n  kg: ko\n", ":3: value of 'kg' contains key(s) ko"),
        ("abbreviations:\n  ko: không\n  hoà: thuận\n  hòa: bình\n", ":4: duplicate key 'hòa'"),
        ("abbreviations:\n  x y: z\n  a: b x\n", ":2: key 'x y' could be formed again"),
        ("abbreviations: [1, 2]\n", ":1: 'abbreviations' must be a mapping"),
        ("other: {}\n", ":1: missing top-level key 'abbreviations'"),
        ("abbreviations:\n  ko: không\n bad indent\n", ":3: invalid YAML"),
    ],
)
def test_malformed_entries_are_reported_with_file_and_line(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, body)
    with pytest.raises(LexiconError) as error:
        load_abbreviations(path)
    assert f"{path}{message}" in str(error.value)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, "abbreviations:\n  ko: không\n  ko: có\n  dc:\n")
    with pytest.raises(LexiconError) as error:
        load_abbreviations(path)
    assert str(error.value).splitlines() == [
        f"{path}:3: duplicate key 'ko' (first on line 2)",
        f"{path}:4: key 'dc' has an empty value",
    ]


def test_keys_and_values_are_normalised(tmp_path: Path) -> None:
    path = write(tmp_path, "abbreviations:\n  khoẻ: mạnh\n  tl: Thuỷ Lợi\n")
    assert load_abbreviations(path) == {"khỏe": "mạnh", "tl": "thủy lợi"}
    assert load_abbreviations(write(tmp_path, "abbreviations:\n")) == {}
