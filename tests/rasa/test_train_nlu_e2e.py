"""End to end: `rasa train nlu` with the custom components, then load and parse.

Proves that config.yml can reference the components by module path, that a
model trained on accented text understands unaccented text, that the model is
self-contained (trained in one folder, loaded after that folder's data is
gone) and that loading it takes seconds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.rasa.conftest import FIXTURES, REPO_ROOT

CONFIG = """
recipe: default.v1
language: vi
assistant_id: e2e_test
pipeline:
  - name: nlu.tokenizer.VietnameseTokenizer
    abbreviations_file: data/lexicon/abbreviations.yml
  - name: CountVectorsFeaturizer
    use_lemma: false
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: CountVectorsFeaturizer
    use_lemma: true
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: CountVectorsFeaturizer
    analyzer: word
    min_ngram: 1
    max_ngram: 2
  - name: LogisticRegressionClassifier
  - name: nlu.extractors.CatalogEntityExtractor
    catalog_dir: data/catalog
    post_offices_file: data/post_offices.yml
    abbreviations_file: data/lexicon/abbreviations.yml
  - name: EntitySynonymMapper
"""

NLU = """
version: "3.1"
nlu:
- intent: ask_documents
  examples: |
    - cần những giấy tờ gì
    - hồ sơ gồm những giấy tờ gì
    - phải chuẩn bị giấy tờ gì
    - [cấp lại căn cước]{"entity": "procedure", "value": "can_cuoc_cap_lai"} cần mang theo giấy tờ gì
    - làm [giấy khai sinh]{"entity": "procedure", "value": "khai_sinh"} cần những gì
    - thủ tục cần giấy tờ nào
    - mang theo những giấy tờ gì
- intent: ask_fee
  examples: |
    - lệ phí bao nhiêu tiền
    - mất bao nhiêu tiền
    - phí là bao nhiêu
    - có mất phí không
    - [đăng ký kết hôn]{"entity": "procedure", "value": "ket_hon"} hết bao nhiêu tiền
    - tốn bao nhiêu tiền
    - lệ phí có đắt không
- intent: ask_location
  examples: |
    - làm ở đâu
    - nộp hồ sơ ở đâu
    - bưu điện nào gần nhất
    - địa chỉ bưu điện ở đâu
    - đến đâu để làm
    - chỗ nào nhận hồ sơ
    - bưu điện [phố cổ]{"entity": "location", "value": "Phường Hoàn Kiếm"} ở đâu
- intent: greet
  examples: |
    - xin chào
    - chào bạn
    - chào anh chị
    - chào buổi sáng
    - xin chào bưu điện
    - chào em
- synonym: dat_dai
  examples: |
    - sổ đỏ
"""


@pytest.fixture(scope="module")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("project")
    (project / "config.yml").write_text(CONFIG, encoding="utf-8")
    (project / "data" / "lexicon").mkdir(parents=True)
    (project / "data" / "nlu.yml").write_text(NLU, encoding="utf-8")
    shutil.copytree(FIXTURES / "catalog", project / "data" / "catalog")
    shutil.copy(FIXTURES / "post_offices.yml", project / "data" / "post_offices.yml")
    shutil.copy(FIXTURES / "abbreviations.yml", project / "data" / "lexicon" / "abbreviations.yml")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "RASA_TELEMETRY_ENABLED": "false",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    command = [
        sys.executable, "-m", "rasa", "train", "nlu",
        "--config", "config.yml", "--nlu", "data/nlu.yml",
        "--out", "models", "--fixed-model-name", "nlu",
    ]  # fmt: skip
    result = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    model = project / "models" / "nlu.tar.gz"
    assert model.is_file(), result.stdout[-2000:]
    # The model must not need the project's data folder any more.
    shutil.rmtree(project / "data")
    return model


@pytest.fixture(scope="module")
def agent_and_load_time(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from rasa.core.agent import Agent

    elsewhere = tmp_path_factory.mktemp("server")
    cwd = Path.cwd()
    os.chdir(elsewhere)  # a server started somewhere without data/
    try:
        started = time.perf_counter()
        agent = Agent.load(str(trained_model))
        seconds = time.perf_counter() - started
    finally:
        os.chdir(cwd)
    print(f"\nmodel load time: {seconds:.2f} s")
    return agent, seconds


def parse(agent: Any, text: str) -> dict:
    return asyncio.run(agent.parse_message(text))


def test_model_loads_in_seconds(agent_and_load_time: Any) -> None:
    _, seconds = agent_and_load_time
    assert seconds < 15


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("can nhung giay to gi", "ask_documents"),
        ("le phi bao nhieu tien", "ask_fee"),
        ("lam o dau", "ask_location"),
        ("xin chao", "greet"),
        ("ho so gom nhung gi v ad", "ask_documents"),
    ],
)
def test_unaccented_text_is_classified(agent_and_load_time: Any, text: str, intent: str) -> None:
    agent, _ = agent_and_load_time
    result = parse(agent, text)
    assert result["intent"]["name"] == intent, result["intent_ranking"]


def test_entities_and_normalized_text_in_parse_output(agent_and_load_time: Any) -> None:
    agent, _ = agent_and_load_time
    text = "cap lai CCCD o p. hoan kiem het bao nhieu, ma hs 000.00.04.h51-200221-0001"
    result = parse(agent, text)
    assert result["normalized_text"] == (
        "cap lai căn cước công dân o p. hoan kiem het bao nhieu, ma hồ sơ 000.00.04.H51-200221-0001"
    )
    got = {(e["entity"], e["value"]) for e in result["entities"]}
    assert got == {
        ("procedure", "can_cuoc_cap_lai"),
        ("location", "Phường Hoàn Kiếm"),
        ("dossier_code", "000.00.04.H51-200221-0001"),
    }
    assert all(e["extractor"] == "CatalogEntityExtractor" for e in result["entities"])


def test_odd_inputs_parse(agent_and_load_time: Any) -> None:
    agent, _ = agent_and_load_time
    for text in ["", "😀😀", "\x00\u200b", "a" * 5000, ("sổ đỏ 😀 " * 700)[:5000]]:
        result = parse(agent, text)
        assert "intent" in result
