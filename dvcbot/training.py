"""Train the Rasa model only when its inputs changed, and say why."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dvcbot import PROJECT_ROOT

RASA_BIN = PROJECT_ROOT / ".venv-rasa" / "bin" / "rasa"
MODELS = PROJECT_ROOT / "models"
FINGERPRINT = MODELS / "fingerprint.json"
# Everything a trained model depends on: configuration, domain, training data, the content the custom
# components compile into the model (catalog names, post-office wards, abbreviations) and their code.
INPUTS = ["config.yml", "domain", "data/nlu", "data/rules", "data/stories", "data/catalog",
          "data/lexicon", "data/post_offices.yml", "nlu"]
TRAIN_DATA = ["data/nlu", "data/rules", "data/stories"]


def input_files(root: Path = PROJECT_ROOT) -> list[Path]:
    files: list[Path] = []
    for name in INPUTS:
        path = root / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files.extend(
                p for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix in {".yml", ".yaml", ".py", ".csv", ".txt"} and "__pycache__" not in p.parts
            )
    return files


def fingerprint(root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Content hash of every training input, by path relative to ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in input_files(root)}


@dataclass
class TrainDecision:
    needed: bool
    reason: str


def decide(current: dict[str, str], models: Path = MODELS) -> TrainDecision:
    """Whether a model must be trained for ``current`` inputs, and why."""
    stored_path = models / "fingerprint.json"
    if not stored_path.exists():
        return TrainDecision(True, "no trained model yet")
    stored = json.loads(stored_path.read_text())
    model = stored.get("model")
    if not model or not (models / model).exists():
        return TrainDecision(True, "the last model file is missing")
    before: dict[str, str] = stored.get("inputs", {})
    changed = sorted(k for k in current.keys() | before.keys() if current.get(k) != before.get(k))
    if not changed:
        return TrainDecision(False, f"model {model} is up to date")
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return TrainDecision(True, f"changed since the last model: {shown}")


def current_model(models: Path = MODELS) -> Path | None:
    stored_path = models / "fingerprint.json"
    if not stored_path.exists():
        return None
    model = json.loads(stored_path.read_text()).get("model")
    return models / model if model and (models / model).exists() else None


def rasa_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    return env


def train(force: bool = False, root: Path = PROJECT_ROOT, models: Path = MODELS) -> Path:
    """Train when needed; return the model to serve."""
    current = fingerprint(root)
    decision = decide(current, models)
    if not decision.needed and not force:
        print(f"Training skipped: {decision.reason}.", flush=True)
        model = current_model(models)
        assert model is not None
        return model
    reason = "forced" if force and not decision.needed else decision.reason
    print(f"Training the Rasa model ({reason}) ...", flush=True)
    digest = hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:12]
    name = f"dvcbot-{time.strftime('%Y%m%d-%H%M%S')}-{digest}"
    models.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cmd = [str(RASA_BIN), "train", "--config", "config.yml", "--domain", "domain",
           "--data", *[d for d in TRAIN_DATA if (root / d).exists()],
           "--out", str(models), "--fixed-model-name", name]
    result = subprocess.run(cmd, cwd=root, env=rasa_env(), check=False)
    if result.returncode != 0:
        print(f"Training failed (rasa exited with {result.returncode}).", file=sys.stderr, flush=True)
        raise SystemExit(result.returncode)
    elapsed = time.monotonic() - started
    model_file = f"{name}.tar.gz"
    (models / "fingerprint.json").write_text(json.dumps({"model": model_file, "inputs": current}, indent=1))
    print(f"Trained {model_file} in {elapsed:.0f} s.", flush=True)
    return models / model_file
