"""The scoring helpers of nlu.evaluate (pure: Rasa is imported only by the functions that train or parse)."""

from __future__ import annotations

import pytest

from nlu.evaluate import (
    FALLBACK,
    Example,
    Prediction,
    decide,
    entity_key,
    fallback_settings,
    parse_variant,
    score_entities,
    with_overrides,
)


def prediction(ranking: list[tuple[str, float]], entities: list[tuple[str, str]] | None = None) -> Prediction:
    return Prediction(ranking[0][0], ranking[0][1], ranking, entities or [], 0.001)


@pytest.mark.parametrize(
    ("entity", "a", "b"),
    [
        ("location", "Phường Hải Châu", "hai chau"),
        ("location", "p. Hoàn Kiếm", "Quận Hoàn Kiếm"),
        ("location", "Quận 1", "q1"),
        ("dossier_code", "000.00.04.h51 - 200221 - OOO1", "000.00.04.H51-200221-0001"),
        ("phone_digits", "1234", " 1234"),
    ],
)
def test_entity_values_compare_by_meaning(entity: str, a: str, b: str) -> None:
    assert entity_key(entity, a) == entity_key(entity, b)


def test_procedures_compare_by_id() -> None:
    assert entity_key("procedure", "khai_sinh") != entity_key("procedure", "khai_sinh_group")


def test_entity_scores_per_entity() -> None:
    examples = [
        Example("a", "x", [("location", "Hai Chau"), ("procedure", "ho_chieu")]),
        Example("b", "x", [("dossier_code", "000.00.04.H51-200221-0001")]),
    ]
    preds = [
        prediction([("x", 0.9)], [("location", "Phường Hải Châu"), ("procedure", "can_cuoc")]),
        prediction([("x", 0.9)], [("dossier_code", "000.00.04.h51-200221-0001"), ("procedure", "khai_sinh")]),
    ]
    scores = score_entities(examples, preds)
    assert scores["location"] == (1.0, 1.0, 1.0, 1)
    assert scores["dossier_code"] == (1.0, 1.0, 1.0, 1)
    assert scores["procedure"] == (0.0, 0.0, 0.0, 1)


def test_decide_applies_threshold_and_ambiguity() -> None:
    clear = prediction([("procedure_fee", 0.6), ("online_payment", 0.2)])
    close = prediction([("procedure_fee", 0.42), ("online_payment", 0.40)])
    low = prediction([("procedure_fee", 0.25), ("online_payment", 0.1)])
    assert decide(clear, 0.3, 0.05) == "procedure_fee"
    assert decide(close, 0.3, 0.05) == FALLBACK
    assert decide(close, 0.3, 0.0) == "procedure_fee"
    assert decide(low, 0.3, 0.05) == FALLBACK
    assert decide(low, 0.2, 0.05) == "procedure_fee"


def test_config_helpers() -> None:
    config = {
        "pipeline": [
            {"name": "nlu.tokenizer.VietnameseTokenizer"},
            {"name": "nlu.classifiers.TunedLogisticRegressionClassifier", "C": 100},
            {"name": "FallbackClassifier", "threshold": 0.3},
        ]
    }
    assert fallback_settings(config) == (0.3, 0.1)  # Rasa's default ambiguity threshold
    assert fallback_settings({"pipeline": []}) == (0.0, 0.0)
    variant = "pyvi words|VietnameseTokenizer.word_segmenter=pyvi;FallbackClassifier.threshold=0.4"
    label, overrides = parse_variant(variant)
    assert label == "pyvi words"
    assert overrides == {"VietnameseTokenizer.word_segmenter": "pyvi", "FallbackClassifier.threshold": 0.4}
    changed = with_overrides(config, {**overrides, "TunedLogisticRegressionClassifier.C": None})
    assert changed["pipeline"][0]["word_segmenter"] == "pyvi"
    assert changed["pipeline"][2]["threshold"] == 0.4
    assert "C" not in changed["pipeline"][1]
    assert config["pipeline"][1]["C"] == 100  # the original is untouched
    assert parse_variant("config.yml|") == ("config.yml", {})
    with pytest.raises(SystemExit):
        with_overrides(config, {"CRFEntityExtractor.epochs": 1})
