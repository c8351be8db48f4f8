"""TunedLogisticRegressionClassifier through Rasa's graph-component API, and the optional word segmenter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.common import class_from_module_path
from scipy.sparse import csr_matrix

from nlu.classifiers import TunedLogisticRegressionClassifier, known_share, scale_block, trigrams
from nlu.tokenizer import VietnameseTokenizer, join_words

NLU = """
version: "3.1"
nlu:
- intent: ask_documents
  examples: |
    - cần những giấy tờ gì
    - hồ sơ gồm những giấy tờ gì
    - phải chuẩn bị giấy tờ gì
    - làm giấy khai sinh cần những gì
    - mang theo những giấy tờ nào
- intent: ask_fee
  examples: |
    - lệ phí bao nhiêu tiền
    - mất bao nhiêu tiền
    - phí là bao nhiêu
    - có mất phí không
    - tốn bao nhiêu tiền
- intent: greet
  examples: |
    - xin chào
    - chào bạn
    - chào anh chị
    - chào buổi sáng
    - xin chào bưu điện
"""

CLASSIFIER_CONFIG = {"C": 100, "feature_scaling": "log_l2", "min_known_share": 0.5, "max_iter": 1000}


def test_is_registered_and_importable_by_module_path() -> None:
    path = "nlu.classifiers.TunedLogisticRegressionClassifier"
    assert class_from_module_path(path) is TunedLogisticRegressionClassifier
    registered = DefaultV1Recipe._from_registry("TunedLogisticRegressionClassifier")
    assert registered.is_trainable
    assert DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER in registered.types


def test_scale_block_logs_counts_and_normalises_each_row() -> None:
    scaled = scale_block(csr_matrix(np.array([[1.0, 3.0, 0.0], [0.0, 0.0, 0.0], [7.0, 0.0, 0.0]])))
    dense = scaled.toarray()
    assert np.allclose(np.linalg.norm(dense[[0, 2]], axis=1), 1.0)
    assert np.allclose(dense[0, 1] / dense[0, 0], np.log(4) / np.log(2))
    assert not dense[1].any()


def test_known_share_counts_trigrams_and_treats_numbers_as_known() -> None:
    vocabulary = set(trigrams(["giay", "to"])[0])
    assert known_share(["giay", "to"], vocabulary) == 1.0
    assert known_share(["qwxz"], vocabulary) == 0.0
    assert known_share(["1234"], vocabulary) == 1.0
    assert known_share([], vocabulary) == 0.0
    assert known_share(["😀"], vocabulary) == 0.0
    assert 0.0 < known_share(["giay", "qwxz"], vocabulary) < 1.0


def test_unknown_scaling_is_rejected(model_storage: Any, resource: Any) -> None:
    with pytest.raises(ValueError, match="feature_scaling"):
        TunedLogisticRegressionClassifier(
            {**TunedLogisticRegressionClassifier.get_default_config(), "feature_scaling": "tfidf"},
            "clf",
            model_storage,
            resource,
        )


@pytest.fixture
def pipeline(model_storage: Any, execution_context: Any, nlu_data: Callable[[str], Any]) -> Any:
    """Tokenizer, two featurizers and the classifier, trained on NLU; returns (components, classify)."""
    data = nlu_data(NLU)
    tokenizer = VietnameseTokenizer.create(
        {**VietnameseTokenizer.get_default_config(), "abbreviations_file": ""},
        model_storage,
        Resource("tok"),
        execution_context,
    )
    tokenizer.train(data)
    tokenizer.process_training_data(data)
    featurizers = []
    for name, use_lemma in (("cv_text", False), ("cv_lemma", True)):
        config = {
            **CountVectorsFeaturizer.get_default_config(),
            "analyzer": "char_wb",
            "min_ngram": 1,
            "max_ngram": 4,
            "use_lemma": use_lemma,
        }
        featurizer = CountVectorsFeaturizer.create(config, model_storage, Resource(name), execution_context)
        featurizer.train(data)
        featurizer.process_training_data(data)
        featurizers.append(featurizer)
    config = {**TunedLogisticRegressionClassifier.get_default_config(), **CLASSIFIER_CONFIG}
    resource = Resource("clf")
    classifier = TunedLogisticRegressionClassifier.create(config, model_storage, resource, execution_context)
    classifier.train(data)

    def classify(clf: TunedLogisticRegressionClassifier, text: str) -> Message:
        message = Message(data={TEXT: text})
        tokenizer.process([message])
        for featurizer in featurizers:
            featurizer.process([message])
        clf.process([message])
        return message

    return classifier, classify, config, resource


def test_classifies_and_flattens_unknown_text(pipeline: Any) -> None:
    classifier, classify, _, _ = pipeline
    assert classifier.block_widths and len(classifier.block_widths) == 2
    assert classify(classifier, "can nhung giay to gi").get(INTENT)["name"] == "ask_documents"
    assert classify(classifier, "phí bao nhiêu").get(INTENT)["name"] == "ask_fee"
    for noise in ("qwxzkjh", "😀😀", "zzzz vvvv"):
        ranking = classify(classifier, noise).get(INTENT_RANKING_KEY)
        assert len({round(r["confidence"], 6) for r in ranking}) == 1, (noise, ranking)
        assert classify(classifier, noise).get(INTENT)["confidence"] == pytest.approx(1 / 3)


def test_feature_rows_are_the_scaled_blocks_joined(pipeline: Any) -> None:
    """``_create_X`` builds its rows on the arrays; they must equal each featurizer's block through ``scale_block``,
    joined, as the classifier was first written (and as every model so far was trained)."""
    from scipy.sparse import hstack, vstack

    classifier, classify, _, _ = pipeline
    texts = ["cần những giấy tờ gì để làm khai sinh", "phí bao nhiêu", "xin chào", "qwxzkjh", "a a a a a a"]
    messages = [classify(classifier, text) for text in texts]
    expected = vstack([hstack([scale_block(b) for b in classifier._sentence_blocks(m)]) for m in messages])
    got = classifier._create_X(messages)
    assert got.shape == expected.shape
    assert np.allclose(got.toarray(), expected.toarray(), rtol=0, atol=1e-12)
    assert classifier._create_X([]).shape == (0, sum(classifier.block_widths))


def test_persisted_classifier_loads_with_its_tables(pipeline: Any, model_storage: Any, execution_context: Any) -> None:
    classifier, classify, config, resource = pipeline
    loaded = TunedLogisticRegressionClassifier.load(config, model_storage, resource, execution_context)
    assert loaded.block_widths == classifier.block_widths
    assert loaded.vocabulary == classifier.vocabulary
    for text in ("cần giấy tờ gì", "xin chào", "qwxzkjh"):
        a = classify(classifier, text).get(INTENT_RANKING_KEY)
        b = classify(loaded, text).get(INTENT_RANKING_KEY)
        assert [r["name"] for r in a] == [r["name"] for r in b]
        assert np.allclose([r["confidence"] for r in a], [r["confidence"] for r in b])


def test_without_the_check_noise_is_classified_as_rasa_would(pipeline: Any) -> None:
    classifier, classify, _, _ = pipeline
    classifier.config["min_known_share"] = 0.0
    ranking = classify(classifier, "qwxzkjh").get(INTENT_RANKING_KEY)
    assert len({round(r["confidence"], 6) for r in ranking}) > 1


def test_join_words_follows_the_segmenter_and_keeps_codes_apart() -> None:
    words = ["khai", "sinh", "000.00.04.H51-200221-0001", "giấy", "tờ", "gì"]
    tokens, position = [], 0
    for word in words:
        tokens.append(Token(word, position, position + len(word), lemma=word.replace("ấ", "a").replace("ờ", "o")))
        position += len(word) + 1

    def segment(text: str) -> str:
        return text.replace("khai sinh", "khai_sinh").replace("giấy tờ", "giấy_tờ")

    joined = join_words(tokens, segment)
    assert [t.text for t in joined] == ["khai_sinh", "000.00.04.H51-200221-0001", "giấy_tờ", "gì"]
    assert (joined[0].start, joined[0].end) == (0, 9)
    assert joined[2].lemma == "giay_to"

    def broken(text: str) -> str:
        return "something else entirely"

    assert [t.text for t in join_words(tokens, broken)] == words
