"""Tests of nlu.normalize: examples from citizens' messages and properties."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nlu.normalize import (
    canonical_dossier_code,
    find_dossier_codes,
    load_abbreviations,
    normalize,
    normalize_with_offsets,
    strip_diacritics,
    syllables,
)

ABBREVIATIONS = load_abbreviations(str(Path(__file__).resolve().parents[2] / "data" / "lexicon" / "abbreviations.yml"))
CODE = "000.00.04.H51-200221-0001"

# --------------------------------------------------------------------------
# Examples
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lam giay khai sinh cho con can nhung gi", "lam giay khai sinh cho con can nhung gi"),
        (
            "đk thường trú cần nhg giấy tờ j v ad",
            "đăng ký thường trú cần những giấy tờ gì vậy anh/chị",
        ),
        ("cccd bi mat thi lam lai o dau", "căn cước công dân bi mat thi lam lai o dau"),
        ("CCCD bị mất thì làm lại ở đâu???", "căn cước công dân bị mất thì làm lại ở đâu?"),
        ("làm online dk ko ạ", "làm online được không ạ"),
        ("quên mk VNeID thì sao", "quên mật khẩu vneid thì sao"),
        ("mk muốn làm sổ đỏ", "mình muốn làm sổ đỏ"),
        ("Sổ HK mất rồi!!!", "sổ hộ khẩu mất rồi!"),
        ("tp hcm", "thành phố hồ chí minh"),
        ("chờ tí....", "chờ tí..."),
        ("  nhiều \t\n  khoảng   trắng ", "nhiều khoảng trắng"),
    ],
)
def test_citizen_sentences(text: str, expected: str) -> None:
    assert normalize(text, ABBREVIATIONS) == expected


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("hoà", "hòa"),
        ("thuỷ", "thủy"),
        ("khoẻ", "khỏe"),
        ("qúy", "quý"),
        ("oà", "òa"),
        ("Hoà Bình", "hòa bình"),
        ("THUỶ", "thủy"),
        ("hoạ sĩ", "họa sĩ"),
        ("loè loẹt", "lòe loẹt"),
        ("tuỳ", "tùy"),
        ("gìa", "già"),
        ("qủa", "quả"),
        ("ngoaì", "ngoài"),
        ("khuyủ", "khuỷu"),
    ],
)
def test_tone_marks_have_one_placement(old: str, new: str) -> None:
    assert normalize(old) == new
    assert normalize(new) == new


@pytest.mark.parametrize(
    "word",
    ["hoàn", "toán", "quyết", "quỳnh", "giữa", "giường", "gìn", "người", "rượu", "thuở", "huế", "khuya", "cửa", "mía"],
)
def test_well_placed_tones_are_kept(word: str) -> None:
    assert normalize(word) == word


def test_nfd_input_is_composed() -> None:
    nfd = unicodedata.normalize("NFD", "Đăng ký thường trú")
    assert normalize(nfd) == "đăng ký thường trú"


def test_control_and_zero_width_characters() -> None:
    assert normalize("a\u200bb\x00c\ufeff d\r\ne\u2028f") == "abc d e f"
    assert normalize("\x00\u200b") == ""
    assert normalize("") == ""


@pytest.mark.parametrize(
    "text",
    [
        f"mã hồ sơ {CODE} ko",
        "mã hồ sơ 000.00.04.h51-200221-0001 ko",
        "mã hồ sơ 000 . 00 . 04 . H51 - 200221 - 0001 ko",
        "mã hồ sơ OOO.OO.O4.H51-2OO221-OOO1 ko",
    ],
)
def test_dossier_codes_are_canonical_and_untouched(text: str) -> None:
    assert normalize(text, ABBREVIATIONS) == f"mã hồ sơ {CODE} không"


@pytest.mark.parametrize(
    "text",
    [
        "sđt 0912.345.678 k",
        "con 14 tuổi v",
        "hẹn 8:30 ngày 12/03/2024 nha",
        "giá 50 k",
        "mail Nguyen.Van.A@Gmail.com ko",
        "vào https://dichvucong.gov.vn/p/home/DVC.html?ko=1 nhé",
        "vào dichvucong.gov.vn/KO nhé",
        "5k",
    ],
)
def test_numbers_emails_urls_are_not_rewritten(text: str) -> None:
    out = normalize(text, ABBREVIATIONS)
    for protected in re.findall(r"[\d.:/]{2,}|\S+@\S+|https?://\S+|dichvucong\S+", text):
        assert protected in out
    assert " 50 k" in normalize("giá 50 k", ABBREVIATIONS)
    assert normalize("5k", ABBREVIATIONS) == "5k"


def test_strip_diacritics() -> None:
    assert strip_diacritics("Đường Đất đai, hòa, thủy, người, ƯỚC") == "Duong Dat dai, hoa, thuy, nguoi, UOC"
    assert strip_diacritics("abc") == "abc"


def test_dossier_code_helpers() -> None:
    assert find_dossier_codes("ma 000.00.04.h51 - 200221 - OOO1.") == [(3, 32, CODE)]
    assert find_dossier_codes(f"x{CODE}") == []
    assert find_dossier_codes(f"{CODE}5") == []
    match = re.search(r".+", CODE)
    assert match is not None
    from nlu.normalize import DOSSIER_CODE_RE

    m = DOSSIER_CODE_RE.search(CODE.lower())
    assert m is not None and canonical_dossier_code(m) == CODE


def test_offsets_point_into_original_text() -> None:
    text = "Cần CCCD ko? mã 000.00.04.H51-200221-0001"
    tokens = syllables(text, ABBREVIATIONS)
    assert [t.text for t in tokens] == ["cần", "căn", "cước", "công", "dân", "không", "mã", CODE]
    assert [(t.start, t.end) for t in tokens][:2] == [(0, 3), (4, 5)]
    assert text[tokens[-1].start : tokens[-1].end] == CODE
    assert tokens[-1].kind == "code"
    assert [t.lemma for t in tokens][:3] == ["can", "can", "cuoc"]


def test_offsets_with_nfd_and_spaced_code() -> None:
    text = unicodedata.normalize("NFD", "hòa") + " mã 000 . 00 . 04 . h51 - 200221 - 0001 !"
    tokens = syllables(text)
    assert tokens[0].text == "hòa" and (tokens[0].start, tokens[0].end) == (0, 4)
    assert tokens[-1].text == CODE
    assert text[tokens[-1].start : tokens[-1].end] == "000 . 00 . 04 . h51 - 200221 - 0001"


# --------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------

VIETNAMESE_WORDS = [
    "hòa",
    "hoà",
    "thủy",
    "thuỷ",
    "khỏe",
    "khoẻ",
    "quý",
    "qúy",
    "người",
    "đăng",
    "ký",
    "giấy",
    "khai",
    "sinh",
    "căn",
    "cước",
    "Đất",
    "ĐAI",
    "giữa",
    "ngoài",
    "khuỷu",
    "thường",
    "trú",
    "không",
    "được",
    "bị",
    "mất",
    "làm",
    "lại",
    "ở",
    "đâu",
    "sổ",
    "đỏ",
    "tuổi",
    "con",
]
TEENCODE = sorted(ABBREVIATIONS)
PIECES = [
    CODE,
    CODE.lower(),
    "000 . 00 . 04 . H51 - 200221 - 0001",
    "0912.345.678",
    "12/03/2024",
    "14",
    "8:30",
    "a@b.vn",
    "https://dichvucong.gov.vn/x",
    "dvc.gov.vn",
    "???",
    "!!!",
    "....",
    "...",
    ",",
    ".",
    "-",
    "/",
    "😀",
    "👨\u200d👩\u200d👧",
    "\u200b",
    "\x00",
    "\n",
    "\t",
    "  ",
    "\u0301",
    "\u0300",
    "İ",
    "ß",
    "Σ",
    "ΑΣ",
    "가",
    "\u1100\u1161",
    "\u0b47\u0b3e",
    "k",
    "v",
    "5",
    "50 k",
]
SEPARATORS = st.sampled_from([" ", "", "  ", "\n", ", ", "?", "\u200b", "\x07", "-", "/", "."])
citizen_word = st.one_of(
    st.sampled_from(VIETNAMESE_WORDS),
    st.sampled_from(TEENCODE),
    st.sampled_from(PIECES),
    st.from_regex(r"[0-9]{1,12}", fullmatch=True),
    st.text(max_size=4),
)
citizen_text = st.builds(
    lambda words, seps: "".join(w + s for w, s in zip(words, seps[: len(words)], strict=True)),
    st.lists(citizen_word, max_size=25),
    st.lists(SEPARATORS, min_size=25, max_size=25),
).map(lambda t: t if len(t) < 400 else t[:400])
any_text = st.one_of(st.text(), citizen_text, citizen_text.map(lambda t: t.upper()))
dictionaries = st.sampled_from([None, ABBREVIATIONS])

PROPERTY_SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(text=any_text, abbreviations=dictionaries)
@example(text="", abbreviations=None)
@example(text="😀" * 50, abbreviations=ABBREVIATIONS)
@example(text="\x00\x01\x02\u200b\u200d\ufeff", abbreviations=ABBREVIATIONS)
def test_never_raises_and_is_idempotent(text: str, abbreviations: object) -> None:
    once = normalize(text, abbreviations)  # type: ignore[arg-type]
    assert isinstance(once, str)
    assert normalize(once, abbreviations) == once  # type: ignore[arg-type]
    assert once == once.strip() and "  " not in once
    assert unicodedata.is_normalized("NFC", once)


@PROPERTY_SETTINGS
@given(text=any_text, abbreviations=dictionaries)
def test_nfd_and_nfc_give_the_same_result(text: str, abbreviations: object) -> None:
    nfd = unicodedata.normalize("NFD", text)
    nfc = unicodedata.normalize("NFC", text)
    assert normalize(nfd, abbreviations) == normalize(nfc, abbreviations)  # type: ignore[arg-type]


@PROPERTY_SETTINGS
@given(text=any_text)
def test_offsets_are_monotonic_and_in_bounds(text: str) -> None:
    tokens = syllables(text, ABBREVIATIONS)
    previous = 0
    for token in tokens:
        assert 0 <= token.start <= token.end <= len(text)
        assert token.start >= previous
        previous = token.start
        assert token.text and token.lemma == strip_diacritics(token.text)


@PROPERTY_SETTINGS
@given(before=any_text, after=any_text)
def test_dossier_codes_survive(before: str, after: str) -> None:
    text = f"{before} {CODE} {after}"
    assert CODE in normalize(text, ABBREVIATIONS)
    spaced = f"{before} {CODE.lower().replace('-', ' - ').replace('.', ' . ')} {after}"
    assert CODE in normalize(spaced, ABBREVIATIONS)


@PROPERTY_SETTINGS
@given(text=any_text)
def test_digit_runs_survive(text: str) -> None:
    out = normalize(text, ABBREVIATIONS)
    cleaned = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cc", "Cf", "Cs") or ch.isspace())
    for run in re.findall(r"[0-9]+", cleaned):
        assert run in out


ONSETS = ["", "h", "kh", "th", "t", "l", "x", "ng", "nh", "ch", "tr", "đ", "s"]
TONES = ["\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]


@settings(max_examples=300, deadline=None)
@given(
    onset=st.sampled_from(ONSETS),
    nucleus=st.sampled_from(["oa", "oe", "uy"]),
    tone=st.sampled_from(TONES),
    upper=st.booleans(),
    context=st.sampled_from(["", "chữ ", "KHÔNG "]),
)
def test_old_and_new_tone_styles_are_equal(onset: str, nucleus: str, tone: str, upper: bool, context: str) -> None:
    first = unicodedata.normalize("NFC", onset + nucleus[0] + tone + nucleus[1])
    second = unicodedata.normalize("NFC", onset + nucleus + tone)
    if upper:
        first, second = first.upper(), second.upper()
    assert normalize(context + first) == normalize(context + second)
    assert normalize(second).endswith(unicodedata.normalize("NFC", (onset + nucleus[0] + tone + nucleus[1])))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(min_size=1, max_size=40), citizen_text.filter(bool)), min_size=1, max_size=5))
def test_long_arbitrary_text(parts: list) -> None:
    text = "".join(parts)
    text = (text * (5000 // len(text) + 1))[:6000]
    assert len(text) >= 5000
    assert normalize(normalize(text, ABBREVIATIONS), ABBREVIATIONS) == normalize(text, ABBREVIATIONS)


def test_five_thousand_characters_is_fast() -> None:
    """No catastrophic backtracking: each input takes well under a second of this thread's CPU (tens of ms here;
    CPU time, so that other threads of the test process cannot make it fail)."""
    import time

    text = ("Đk thường trú cần nhg giấy tờ j v ad??? sđt 0912.345.678, mã " + CODE + " 😀 ") * 60
    start = time.thread_time()
    out = normalize(text, ABBREVIATIONS)
    assert time.thread_time() - start < 1.0
    assert len(text) > 5000 and out.count(CODE) == 60
    for adversarial in ("a." * 3000, "1." * 3000, "a-" * 3000, "a@" * 3000, "x" * 6000, "o" * 6000):
        start = time.thread_time()
        normalize(adversarial, ABBREVIATIONS)
        assert time.thread_time() - start < 1.0, adversarial[:10]


def test_normalize_with_offsets_regions() -> None:
    result = normalize_with_offsets(f"gọi 0912345678 về {CODE}")
    kinds = [kind for kind, _, _ in result.regions]
    assert kinds == ["text", "number", "text", "code"]
    assert len(result.starts) == len(result.text) == len(result.ends)
