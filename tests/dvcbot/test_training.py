"""Training happens only when an input of the model changed, and says which."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dvcbot.training import current_model, decide, fingerprint, history, train


def make_project(root: Path) -> None:
    (root / "domain").mkdir()
    (root / "data" / "nlu").mkdir(parents=True)
    (root / "config.yml").write_text("pipeline: []\n")
    (root / "domain" / "core.yml").write_text("intents: [greet]\n")
    (root / "data" / "nlu" / "chitchat.yml").write_text("nlu: []\n")
    (root / "data" / "content").mkdir()
    (root / "data" / "content" / "gateway.yml").write_text("messages: {}\n")  # not a model input


def test_decisions(tmp_path: Path) -> None:
    root, models = tmp_path / "p", tmp_path / "models"
    root.mkdir()
    make_project(root)
    current = fingerprint(root)
    assert sorted(current) == ["config.yml", "data/nlu/chitchat.yml", "domain/core.yml"]
    assert decide(current, models).reason == "no trained model yet"

    models.mkdir()
    (models / "m.tar.gz").write_bytes(b"model")
    (models / "fingerprint.json").write_text(json.dumps({"model": "m.tar.gz", "inputs": current}))
    assert not decide(current, models).needed

    (root / "data" / "content" / "gateway.yml").write_text("messages: {a: 1}\n")
    assert not decide(fingerprint(root), models).needed

    (root / "domain" / "core.yml").write_text("intents: [greet, goodbye]\n")
    (root / "data" / "nlu" / "new.yml").write_text("nlu: []\n")
    decision = decide(fingerprint(root), models)
    assert decision.needed
    assert decision.reason == "changed since the last model: data/nlu/new.yml, domain/core.yml"

    (models / "m.tar.gz").unlink()
    assert decide(current, models).reason == "the last model file is missing"


FAKE_RASA = """#!/bin/bash
# stands in for `rasa train`: prints what Rasa logs, writes --out/<--fixed-model-name>.tar.gz
while [ $# -gt 0 ]; do
  case "$1" in --out) out="$2"; shift;; --fixed-model-name) name="$2"; shift;; esac; shift
done
echo "/x/site-packages/tensorflow/foo.py:1: DeprecationWarning: noise"
echo "2026-11-27 08:00:00 INFO     rasa.engine.training.hooks - Restored component 'CountVectorsFeaturizer' from cache."
echo "2026-11-27 08:00:01 INFO     rasa.engine.training.hooks  - Starting to train component 'RulePolicy'."
echo "2026-11-27 08:00:02 INFO     rasa.engine.training.hooks  - Finished training component 'RulePolicy'."
if [ -n "$FAIL" ]; then echo "2026-11-27 08:00:03 ERROR    rasa  - InvalidDomain: bad domain"; exit 1; fi
echo "model" > "$out/$name.tar.gz"
echo "Your Rasa model is trained and saved at '$out/$name.tar.gz'."
"""


def test_train_shows_progress_and_keeps_a_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root, models = tmp_path / "p", tmp_path / "models"
    root.mkdir()
    make_project(root)
    rasa = tmp_path / "rasa"
    rasa.write_text(FAKE_RASA)
    rasa.chmod(0o755)
    lines: list[str] = []

    first = train(root=root, models=models, say=lines.append, rasa_bin=rasa)
    assert first.exists()
    assert lines[0] == "Training the Rasa model (no trained model yet) ..."
    assert [line.split("s  ", 1)[1] for line in lines[1:4]] == [
        "training RulePolicy", "unchanged, reused from the cache: CountVectorsFeaturizer", "model written"]
    assert lines[-1].startswith(f"Trained {first.name} in ")
    assert "DeprecationWarning" in (root / "var" / "train.log").read_text()  # the whole log, for when it fails
    assert current_model(models) == first

    lines.clear()
    assert train(root=root, models=models, say=lines.append, rasa_bin=rasa) == first
    assert lines == [f"Training skipped: model {first.name} is up to date."]

    time.sleep(1.1)  # model names carry the time to the second
    second = train(force=True, root=root, models=models, say=lines.append, rasa_bin=rasa)
    assert second != first and first.exists() and second.exists()
    assert [h["model"] for h in history(models)] == [second.name, first.name]
    assert history(models)[0]["reason"] == "forced"

    monkeypatch.setenv("FAIL", "1")
    with pytest.raises(SystemExit):
        train(force=True, root=root, models=models, say=lines.append, rasa_bin=rasa)
    assert "InvalidDomain: bad domain" in capsys.readouterr().err
    assert current_model(models) == second
