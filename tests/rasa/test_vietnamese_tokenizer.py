"""VietnameseTokenizer through Rasa's graph-component API."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.common import class_from_module_path

from nlu.tokenizer import NORMALIZED_TEXT, VietnameseTokenizer
from tests.rasa.conftest import FIXTURES

CODE = "000.00.04.H51-200221-0001"
NLU = """
version: "3.1"
nlu:
- intent: ask_documents
  examples: |
    - đk thường trú cần giấy tờ gì
    - làm [cccd](procedure) cần gì
"""


def train(config: dict, model_storage: Any, resource: Any, execution_context: Any, data: Any) -> VietnameseTokenizer:
    tokenizer = VietnameseTokenizer.create(
        {**VietnameseTokenizer.get_default_config(), **config}, model_storage, resource, execution_context
    )
    assert tokenizer.train(data) == resource
    return tokenizer


def tokens_of(tokenizer: VietnameseTokenizer, text: str) -> list[Any]:
    message = Message(data={TEXT: text})
    tokenizer.process([message])
    return message.get(TOKENS_NAMES[TEXT])


@pytest.fixture
def trained(model_storage: Any, resource: Any, execution_context: Any, nlu_data: Callable[[str], Any]) -> Any:
    config = {"abbreviations_file": str(FIXTURES / "abbreviations.yml")}
    return train(config, model_storage, resource, execution_context, nlu_data(NLU)), config


def test_is_registered_and_importable_by_module_path() -> None:
    assert class_from_module_path("nlu.tokenizer.VietnameseTokenizer") is VietnameseTokenizer
    registered = DefaultV1Recipe._from_registry("VietnameseTokenizer")
    assert registered.is_trainable
    assert DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER in registered.types


def test_tokens_are_normalised_syllables_with_lemmas_and_original_offsets(trained: Any) -> None:
    tokenizer, _ = trained
    text = "Đk thường trú cần nhg giấy tờ j v AD, mã " + CODE.lower()
    tokens = tokens_of(tokenizer, text)
    assert [t.text for t in tokens] == [
        "đăng",
        "ký",
        "thường",
        "trú",
        "cần",
        "nhg",
        "giấy",
        "tờ",
        "gì",
        "vậy",
        "anh",
        "chị",
        "mã",
        CODE,
    ]
    assert [t.lemma for t in tokens][:4] == ["dang", "ky", "thuong", "tru"]
    assert [(t.start, t.end) for t in tokens][:3] == [(0, 1), (1, 2), (3, 9)]
    assert text[tokens[-1].start : tokens[-1].end] == CODE.lower()
    starts = [t.start for t in tokens]
    assert starts == sorted(starts)
    assert all(0 <= t.start < t.end <= len(text) for t in tokens)


def test_normalized_text_is_in_the_parse_output(trained: Any) -> None:
    tokenizer, _ = trained
    message = Message(data={TEXT: "CCCD bị mất thì làm lại ở đâu???"})
    tokenizer.process([message])
    output = message.as_dict(only_output_properties=True)
    assert output[NORMALIZED_TEXT] == "căn cước công dân bị mất thì làm lại ở đâu?"
    assert output[TEXT] == "CCCD bị mất thì làm lại ở đâu???"


def test_persisted_dictionary_is_used_after_loading(
    trained: Any, model_storage: Any, resource: Any, execution_context: Any
) -> None:
    tokenizer, config = trained
    loaded = VietnameseTokenizer.load(
        {**VietnameseTokenizer.get_default_config(), **config}, model_storage, resource, execution_context
    )
    assert loaded.abbreviations == tokenizer.abbreviations and "cccd" in loaded.abbreviations
    for text in ["làm cccd ko ad", "hoà bình", "sđt 0912 345 678"]:
        assert tokens_of(loaded, text) == tokens_of(tokenizer, text)


def test_loaded_model_does_not_need_the_dictionary_file(
    tmp_path: Path, model_storage: Any, resource: Any, execution_context: Any, nlu_data: Callable[[str], Any]
) -> None:
    copy = tmp_path / "abbreviations.yml"
    copy.write_text((FIXTURES / "abbreviations.yml").read_text(encoding="utf-8"), encoding="utf-8")
    config = {**VietnameseTokenizer.get_default_config(), "abbreviations_file": str(copy)}
    train(config, model_storage, resource, execution_context, nlu_data(NLU))
    copy.unlink()
    loaded = VietnameseTokenizer.load(config, model_storage, resource, execution_context)
    assert [t.text for t in tokens_of(loaded, "ko")] == ["không"]


def test_training_data_tokens_align_with_entity_annotations(trained: Any, nlu_data: Callable[[str], Any]) -> None:
    tokenizer, _ = trained
    data = nlu_data(NLU)
    tokenizer.process_training_data(data)
    example = next(e for e in data.training_examples if "cccd" in e.get(TEXT))
    tokens = example.get(TOKENS_NAMES[TEXT])
    entity = example.get("entities")[0]
    inside = [t.text for t in tokens if entity["start"] <= t.start and t.end <= entity["end"]]
    assert inside == ["căn", "cước", "công", "dân"]
    assert example.get(NORMALIZED_TEXT) == "làm căn cước công dân cần gì"
    assert [t.text for t in example.get(TOKENS_NAMES[INTENT])] == ["ask_documents"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "😀😀😀",
        "\x00\x01\u200b\ufeff",
        "?!...",
        unicodedata.normalize("NFD", "Đăng ký khai sinh cho con ở phường Hoàn Kiếm"),
        "a\u0301\u0301\u0301 \u0301",
        ("Tôi muốn hỏi về hồ sơ đất đai 😀 " * 200)[:5000],
        "x" * 5000,
        "İ000.00.00.A00-000000-0000",
    ],
)
def test_any_input_gives_valid_tokens(trained: Any, text: str) -> None:
    tokenizer, _ = trained
    tokens = tokens_of(tokenizer, text)
    assert tokens, "Rasa featurizers expect at least one token"
    previous = 0
    for token in tokens:
        assert 0 <= token.start <= token.end <= len(text)
        assert token.start >= previous
        previous = token.start


def test_missing_dictionary_warns_and_trains(
    model_storage: Any, resource: Any, execution_context: Any, nlu_data: Callable[[str], Any], tmp_path: Path
) -> None:
    config = {"abbreviations_file": str(tmp_path / "missing.yml")}
    with pytest.warns(UserWarning, match="not found"):
        tokenizer = train(config, model_storage, resource, execution_context, nlu_data(NLU))
    assert [t.text for t in tokens_of(tokenizer, "ko")] == ["ko"]


def test_malformed_dictionary_fails_training_with_file_and_line(
    model_storage: Any, resource: Any, execution_context: Any, nlu_data: Callable[[str], Any], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("abbreviations:\n  ko: không\n  ko: có\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{bad}:3: duplicate key"):
        train({"abbreviations_file": str(bad)}, model_storage, resource, execution_context, nlu_data(NLU))


def test_fingerprint_follows_the_dictionary_file(tmp_path: Path) -> None:
    path = tmp_path / "abbreviations.yml"
    path.write_text("abbreviations:\n  ko: không\n", encoding="utf-8")
    config = {"abbreviations_file": str(path)}
    first = VietnameseTokenizer.fingerprint_addon(config)
    assert VietnameseTokenizer.fingerprint_addon(config) == first
    path.write_text("abbreviations:\n  ko: không\n  k: không\n", encoding="utf-8")
    assert VietnameseTokenizer.fingerprint_addon(config) != first
