"""The project's current trained model (``make model``) against the held-out data, and against odd input.

CI's guard for issue 3: it fails when the model's held-out intent accuracy drops below what was measured for
it (``reports/nlu.md``) less a margin, or when any of the styles citizens really type in drops below 92 %.
The model is the one ``models/fingerprint.json`` names (written by ``dvcbot train``).
"""

from __future__ import annotations

import asyncio
import json
import unicodedata
from collections import defaultdict
from typing import Any

import pytest

from tests.conftest import REQUIRE
from tests.rasa.conftest import REPO_ROOT

MODELS = REPO_ROOT / "models"
HELDOUT = REPO_ROOT / "data" / "heldout" / "nlu.yml"

# Measured 98.0 % (339 of 346) for the model `make model` trains from this data and config (reports/nlu.md);
# two points of margin. Raise it with the measured value when the model gets better.
MIN_ACCURACY = 0.96
# The floor for the styles that differ most from clean text.
MIN_STYLE_ACCURACY = {"no_diacritics": 0.92, "teencode": 0.92, "typo": 0.92}


@pytest.fixture(scope="module")
def agent() -> Any:
    from rasa.core.agent import Agent

    fingerprint = MODELS / "fingerprint.json"
    name = json.loads(fingerprint.read_text(encoding="utf-8")).get("model") if fingerprint.is_file() else None
    if not name or not (MODELS / name).is_file():
        message = "no trained Rasa model in models/ (run `make model`)"
        if REQUIRE:
            pytest.fail(message + " (DVCBOT_REQUIRE_SERVICES=1)")
        pytest.skip(message)
    return Agent.load(str(MODELS / name))


def parse_all(agent: Any, texts: list[str]) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [await agent.parse_message(text) for text in texts]

    return asyncio.run(run())


def test_heldout_intent_accuracy_stays_at_the_measured_level(agent: Any) -> None:
    from nlu.evaluate import read_examples

    examples = read_examples(HELDOUT)
    results = parse_all(agent, [e.text for e in examples])
    right = [e.intent == r["intent"]["name"] for e, r in zip(examples, results, strict=True)]
    by_style: dict[str, list[bool]] = defaultdict(list)
    for example, ok in zip(examples, right, strict=True):
        by_style[example.style].append(ok)
    accuracy = sum(right) / len(right)
    styles = {style: sum(v) / len(v) for style, v in by_style.items()}
    wrong = [
        f"{e.text!r}: {e.intent} → {r['intent']['name']}"
        for e, r, ok in zip(examples, results, right, strict=True)
        if not ok
    ]
    summary = f"accuracy {accuracy:.1%}, per style {styles}; errors: " + "; ".join(wrong)
    assert accuracy >= MIN_ACCURACY, summary
    for style, floor in MIN_STYLE_ACCURACY.items():
        assert styles.get(style, 0.0) >= floor, summary


# 35 of the 40 inputs of data/heldout/noise.yml reach the fallback (reports/nlu.md); the other 5 are Vietnamese
# interjections ("ừm", "hả") that the model cannot tell from short replies. out_of_scope counts as caught too.
MIN_NOISE_TO_FALLBACK = 32


def test_noise_reaches_the_fallback(agent: Any) -> None:
    from nlu.evaluate import read_noise

    noise = read_noise()
    results = parse_all(agent, noise)
    answered = [f"{t!r} → {r['intent']['name']}" for t, r in zip(noise, results, strict=True)
                if r["intent"]["name"] not in ("nlu_fallback", "out_of_scope")]
    assert len(noise) - len(answered) >= MIN_NOISE_TO_FALLBACK, answered


ODD_INPUTS = [
    "",
    " ",
    "\n\t\r",
    "a" * 5000,
    ("làm giấy khai sinh cần giấy tờ gì? " * 200)[:5000],
    "x" + "́" * 4999,  # one letter, then 4,999 combining acute accents
    "😀😀😀",
    "👨‍👩‍👧‍👦🇻🇳🙏🏽",
    unicodedata.normalize("NFD", "Làm căn cước công dân ở đâu, lệ phí bao nhiêu?"),
    unicodedata.normalize("NFD", "ĐĂNG KÝ KHAI TỬ CHO BỐ"),
    "\x00\x01\x02\x07\x1b[31mhộ chiếu\x7f",
    "\u200b\u200c\u200d\ufeff\u2060",
    "\u202eupmac\u202c hộ\u00a0chiếu\u2028lệ\u2029phí",
    "ｌàｍ　ｈộ　ｃｈｉếｕ",  # full-width letters and space
    "𝐥𝐚̀𝐦 𝐡𝐨̣̂ 𝐜𝐡𝐢𝐞̂́𝐮",  # mathematical bold letters with combining marks
    "你好 こんにちは Привет مرحبا שלום",
    "\ue000\uf8ff\U000f0000",  # private use
    "000.00.04.H51-200221-0001" * 50,
    "0" * 5000,
    "?!.,;:~" * 700,
    "<script>alert(1)</script> {\"json\": true} /greet",
    "/inform{\"dossier_code\": \"000.00.04.H51-200221-0001\"}",
]


def test_any_input_parses(agent: Any) -> None:
    for text, result in zip(ODD_INPUTS, parse_all(agent, ODD_INPUTS), strict=True):
        assert isinstance(result.get("intent"), dict), repr(text[:40])
        assert isinstance(result.get("entities"), list), repr(text[:40])
