"""Training happens only when an input of the model changed, and says which."""

from __future__ import annotations

import json
from pathlib import Path

from dvcbot.training import decide, fingerprint


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
