"""CatalogEntityExtractor through Rasa's graph-component API, on fixture catalogs."""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.common import class_from_module_path

from nlu.extractors import CatalogEntityExtractor
from tests.rasa.conftest import FIXTURES

CODE = "000.00.04.H51-200221-0001"
NLU = """
version: "3.1"
nlu:
- intent: ask_procedure
  examples: |
    - làm [sổ đỏ]{"entity": "procedure", "value": "dat_dai"} ở đâu
    - thủ tục [bìa hồng](procedure) thế nào
    - tôi hỏi về [sổ hồng](procedure)
    - hôm nay bưu điện [phố cổ]{"entity": "location", "value": "Phường Hoàn Kiếm"} có mở không
    - bưu điện [hoan kiem](location) ở đâu
    - tôi ở [phường Hoàn Kiếm](location)
    - hỏi [cấp lại căn cước](procedure)
- synonym: dat_dai
  examples: |
    - giấy đỏ
"""
CONFIG = {
    "catalog_dir": str(FIXTURES / "catalog"),
    "post_offices_file": str(FIXTURES / "post_offices.yml"),
    "abbreviations_file": str(FIXTURES / "abbreviations.yml"),
}


def make(config: dict[str, Any], model_storage: Any, resource: Any, execution_context: Any) -> CatalogEntityExtractor:
    return CatalogEntityExtractor.create(
        {**CatalogEntityExtractor.get_default_config(), **config}, model_storage, resource, execution_context
    )


@pytest.fixture
def extractor(model_storage: Any, resource: Any, execution_context: Any, nlu_data: Callable[[str], Any]) -> Any:
    component = make(CONFIG, model_storage, resource, execution_context)
    with pytest.warns(UserWarning, match="without an id"):
        assert component.train(nlu_data(NLU)) == resource
    return component


def entities(
    component: CatalogEntityExtractor, text: str, existing: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    data: dict[str, Any] = {TEXT: text}
    if existing is not None:
        data[ENTITIES] = existing
    message = Message(data=data)
    component.process([message])
    return message.get(ENTITIES)


def found(component: CatalogEntityExtractor, text: str) -> list[tuple]:
    return [(e["entity"], e["value"], text[e["start"] : e["end"]]) for e in entities(component, text)]


def test_is_registered_and_importable_by_module_path() -> None:
    assert class_from_module_path("nlu.extractors.CatalogEntityExtractor") is CatalogEntityExtractor
    registered = DefaultV1Recipe._from_registry("CatalogEntityExtractor")
    assert registered.is_trainable
    assert DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR in registered.types


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tôi muốn cấp lại căn cước", [("procedure", "can_cuoc_cap_lai", "cấp lại căn cước")]),
        ("căn cước làm ở đâu", [("procedure", "can_cuoc", "căn cước")]),
        ("cap lai can cuoc o dau", [("procedure", "can_cuoc_cap_lai", "cap lai can cuoc")]),
        ("Cấp lại CCCD", [("procedure", "can_cuoc_cap_lai", "Cấp lại CCCD")]),
        ("CCCD làm ở đâu", [("procedure", "can_cuoc", "CCCD")]),
        ("làm CCCD cho con", [("procedure", "can_cuoc_cap_moi", "làm CCCD cho con")]),
        ("đăng ký khai sinh", [("procedure", "khai_sinh", "đăng ký khai sinh")]),
        ("đk kết hôn cần gì", [("procedure", "ket_hon", "đk kết hôn")]),
        ("dang ky ket hon", [("procedure", "ket_hon", "dang ky ket hon")]),
        ("đăng ký kết hônn", [("procedure", "ket_hon", "đăng ký kết hônn")]),  # one typo, 4 syllables
        ("lam so do o dau", [("procedure", "dat_dai", "so do")]),  # taught by an NLU example
        ("hỏi về giấy đỏ", [("procedure", "dat_dai", "giấy đỏ")]),  # taught by a synonym
        ("cap so do lan dau", [("procedure", "dat_dai_lan_dau", "cap so do lan dau")]),
        ("bìa hồng", [("procedure", "bìa hồng", "bìa hồng")]),  # annotated without a value
        ("đất đai, nhà đất", [("procedure", "dat_dai", "đất đai")]),  # one value, reported once
        # the group gives way to one of its own choices named in the same message
        ("thẻ căn cước bị mất, cần cấp lại căn cước", [("procedure", "can_cuoc_cap_lai", "cấp lại căn cước")]),
        (
            "căn cước và đăng ký kết hôn",
            [("procedure", "can_cuoc", "căn cước"), ("procedure", "ket_hon", "đăng ký kết hôn")],
        ),
    ],
)
def test_procedures(extractor: Any, text: str, expected: list[tuple]) -> None:
    assert found(extractor, text) == expected


def test_wrong_accents_are_not_a_match_for_short_names(extractor: Any) -> None:
    assert found(extractor, "cắn cước") == []
    assert found(extractor, "căn") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("bưu điện phường Hoàn Kiếm", [("location", "Phường Hoàn Kiếm", "phường Hoàn Kiếm")]),
        ("bưu điện P. Hoàn Kiếm", [("location", "Phường Hoàn Kiếm", "P. Hoàn Kiếm")]),
        ("buu dien hoan kiem", [("location", "Phường Hoàn Kiếm", "hoan kiem")]),
        ("ở quận hoàn kiếm cũ", [("location", "Quận Hoàn Kiếm", "quận hoàn kiếm")]),
        ("huyện Gia Lâm", [("location", "Huyện Gia Lâm", "huyện Gia Lâm")]),
        ("xa gia lam", [("location", "Xã Gia Lâm", "xa gia lam")]),
        ("thị xã Sơn Tây", [("location", "Thị xã Sơn Tây", "thị xã Sơn Tây")]),
        ("tx son tay", [("location", "Thị xã Sơn Tây", "tx son tay")]),
        ("q1 có bưu điện không", [("location", "Quận 1", "q1")]),
        ("quận 1", [("location", "Quận 1", "quận 1")]),
        ("hôm nay phố cổ có mở không", [("location", "Phường Hoàn Kiếm", "phố cổ")]),
    ],
)
def test_locations(extractor: Any, text: str, expected: list[tuple]) -> None:
    assert found(extractor, text) == expected


def test_a_bare_number_is_not_a_place(extractor: Any) -> None:
    assert found(extractor, "tôi 1 mình") == []


@pytest.mark.parametrize(
    "written",
    [
        CODE,
        CODE.lower(),
        "000 . 00 . 04 . H51 - 200221 - 0001",
        "OOO.OO.O4.H51-2OO221-OOO1",
        "000.00.04.h51–200221–0001",
    ],
)
def test_dossier_codes(extractor: Any, written: str) -> None:
    text = f"tra cứu hồ sơ {written}, sđt đuôi 5678"
    assert found(extractor, text) == [
        ("dossier_code", CODE, written),
        ("phone_digits", "5678", "5678"),
    ]


@pytest.mark.parametrize(
    ("text", "digits"),
    [
        ("4 số cuối là 1234", ["1234"]),
        ("1234", ["1234"]),
        ("số cuối: 0912 345 678", []),
        ("gọi 0912345678", []),
        ("ngày 12/03/2024", []),
        ("năm 2024 tôi làm", []),
        ("123 hoặc 12345", []),
        (f"{CODE}", []),
        ("số 1234.", ["1234"]),
    ],
)
def test_phone_digits(extractor: Any, text: str, digits: list[str]) -> None:
    assert [v for kind, v, _ in found(extractor, text) if kind == "phone_digits"] == digits


def test_entities_carry_rasa_fields_and_offsets_into_the_original(extractor: Any) -> None:
    text = unicodedata.normalize("NFD", "Cấp lại căn cước ở phường Hoàn Kiếm, mã ") + CODE
    result = entities(extractor, text)
    assert [e["entity"] for e in result] == ["procedure", "location", "dossier_code"]
    for entity in result:
        assert set(entity) >= {"entity", "start", "end", "value", "extractor"}
        assert entity["extractor"] == "CatalogEntityExtractor"
        assert 0 <= entity["start"] < entity["end"] <= len(text)
    assert unicodedata.normalize("NFC", text[result[1]["start"] : result[1]["end"]]) == "phường Hoàn Kiếm"


def test_does_not_duplicate_entities_already_found(extractor: Any) -> None:
    text = "cấp lại căn cước"
    earlier = {"entity": "procedure", "start": 0, "end": 16, "value": "x", "extractor": "RegexEntityExtractor"}
    result = entities(extractor, text, [earlier])
    assert result == [earlier]


def test_persist_and_load_give_the_same_results(
    extractor: Any, model_storage: Any, resource: Any, execution_context: Any
) -> None:
    loaded = CatalogEntityExtractor.load(
        {**CatalogEntityExtractor.get_default_config(), **CONFIG}, model_storage, resource, execution_context
    )
    for text in [
        "cap lai can cuoc o phuong hoan kiem, ma 000.00.04.h51-200221-0001, so 1234",
        "lam so do",
        "đăng ký kết hônn",
        "q1",
    ]:
        assert entities(loaded, text) == entities(extractor, text)


def test_loaded_model_does_not_need_the_data_files(
    tmp_path: Path, model_storage: Any, resource: Any, execution_context: Any, nlu_data: Callable[[str], Any]
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for source in (FIXTURES / "catalog").iterdir():
        (catalog / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    config = {**CONFIG, "catalog_dir": str(catalog)}
    component = make(config, model_storage, resource, execution_context)
    with pytest.warns(UserWarning):
        component.train(nlu_data(NLU))
    for path in catalog.iterdir():
        path.unlink()
    catalog.rmdir()
    loaded = CatalogEntityExtractor.load(
        {**CatalogEntityExtractor.get_default_config(), **config}, model_storage, resource, execution_context
    )
    assert found(loaded, "cấp lại căn cước") == [("procedure", "can_cuoc_cap_lai", "cấp lại căn cước")]


def test_missing_post_offices_and_catalog_are_tolerated(
    tmp_path: Path, model_storage: Any, resource: Any, execution_context: Any, nlu_data: Callable[[str], Any]
) -> None:
    config = {**CONFIG, "catalog_dir": str(tmp_path / "nope"), "post_offices_file": str(tmp_path / "nope.yml")}
    component = make(config, model_storage, resource, execution_context)
    with pytest.warns(UserWarning, match="not found"):
        component.train(nlu_data(NLU))
    assert found(component, f"làm sổ đỏ, mã {CODE}") == [
        ("procedure", "dat_dai", "sổ đỏ"),
        ("dossier_code", CODE, CODE),
    ]


def test_invalid_catalog_yaml_names_the_file(
    tmp_path: Path, model_storage: Any, resource: Any, execution_context: Any, nlu_data: Callable[[str], Any]
) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "broken.yml").write_text("procedures:\n  - id: x\n    name: [unclosed\n", encoding="utf-8")
    component = make({**CONFIG, "catalog_dir": str(catalog)}, model_storage, resource, execution_context)
    with pytest.raises(ValueError, match=r"broken\.yml:"):
        component.train(nlu_data(NLU))


def test_untrained_extractor_still_finds_patterns(model_storage: Any, resource: Any, execution_context: Any) -> None:
    component = make(CONFIG, model_storage, resource, execution_context)
    assert found(component, f"mã {CODE}") == [("dossier_code", CODE, CODE)]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "😀" * 40,
        "\x00\x07\u200b\u202e",
        unicodedata.normalize("NFD", "Đất đai ở xã Gia Lâm"),
        ("cấp lại căn cước ở phường Hoàn Kiếm 1234 " * 130)[:5000],
        "1" * 5000,
        "a\u0301" * 2500,
    ],
)
def test_any_input(extractor: Any, text: str) -> None:
    result = entities(extractor, text)
    assert isinstance(result, list)
    for entity in result:
        assert 0 <= entity["start"] < entity["end"] <= len(text)
    spans = sorted((e["start"], e["end"]) for e in result)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_message_without_text_is_left_alone(extractor: Any) -> None:
    message = Message(data={})
    extractor.process([message])
    assert message.get(ENTITIES) == []


def test_fingerprint_follows_the_catalog(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "a.yml").write_text("procedures: []\n", encoding="utf-8")
    config = {**CatalogEntityExtractor.get_default_config(), "catalog_dir": str(catalog)}
    first = CatalogEntityExtractor.fingerprint_addon(config)
    (catalog / "a.yml").write_text("procedures: [{id: x, name: X}]\n", encoding="utf-8")
    assert CatalogEntityExtractor.fingerprint_addon(config) != first
