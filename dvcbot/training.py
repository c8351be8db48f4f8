"""Train the Rasa model only when its inputs changed; say why, show progress, keep the previous models."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvcbot import PROJECT_ROOT

if TYPE_CHECKING:
    from dvcbot.settings import Settings

RASA_BIN = PROJECT_ROOT / ".venv-rasa" / "bin" / "rasa"
RASA_PY = RASA_BIN.with_name("python")
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


def current_model(models: Path | None = None) -> Path | None:
    """The newest trained model in ``models`` (default: ``DVCBOT_MODELS_DIR``, else ``models/``)."""
    models = models or _settings().models_path
    stored_path = models / "fingerprint.json"
    if not stored_path.exists():
        return None
    model = json.loads(stored_path.read_text()).get("model")
    return models / model if model and (models / model).exists() else None


def _settings() -> Settings:
    from dvcbot.settings import get_settings

    return get_settings()


def rasa_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("RASA_TELEMETRY_ENABLED", "false")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
    return env


HISTORY_LENGTH = 10
_STARTING = re.compile(r"Starting to train component '([^']+)'")
_RESTORED = re.compile(r"Restored component '([^']+)' from cache")
_FAILURE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|Exception:|Error:")


def history(models: Path = MODELS) -> list[dict[str, Any]]:
    """The models trained here, newest first: ``{"model", "trained_at", "seconds", "reason"}``."""
    stored_path = models / "fingerprint.json"
    if not stored_path.exists():
        return []
    entries = json.loads(stored_path.read_text()).get("history") or []
    return [e for e in entries if isinstance(e, dict) and e.get("model")]


def _record(models: Path, model_file: str, inputs: dict[str, str], seconds: float, reason: str) -> None:
    """Name the new model current and keep a short history of the previous ones (their files stay)."""
    previous = history(models)
    stored_path = models / "fingerprint.json"
    if not previous and stored_path.exists():  # written before there was a history
        older = json.loads(stored_path.read_text()).get("model")
        if older:
            previous = [{"model": older}]
    entry = {"model": model_file, "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
             "seconds": round(seconds, 1), "reason": reason}
    entries = [entry, *(e for e in previous if e.get("model") != model_file)][:HISTORY_LENGTH]
    tmp = stored_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"model": model_file, "inputs": inputs, "history": entries}, indent=1))
    tmp.replace(stored_path)


class _Progress:
    """Turns Rasa's training log into a few progress lines; the whole log goes to a file."""

    def __init__(self, started: float, say: Callable[[str], None]) -> None:
        self.started = started
        self.say = say
        self.restored: list[str] = []
        self.tail: list[str] = []

    def feed(self, line: str) -> None:
        line = line.rstrip()
        self.tail = [*self.tail[-39:], line]
        elapsed = time.monotonic() - self.started
        if match := _STARTING.search(line):
            self.say(f"  {elapsed:4.0f} s  training {match.group(1)}")
        elif match := _RESTORED.search(line):
            self.restored.append(match.group(1))
        elif "Your Rasa model is trained and saved" in line:
            if self.restored:
                self.say(f"  {elapsed:4.0f} s  unchanged, reused from the cache: {', '.join(self.restored)}")
            self.say(f"  {elapsed:4.0f} s  model written")


def train(force: bool = False, root: Path | None = None, models: Path | None = None,
          say: Callable[[str], None] | None = None, rasa_bin: Path = RASA_BIN) -> Path:
    """Train when needed, with progress lines; return the model to serve.

    ``root`` holds config.yml, domain/ and data/ (default: ``DVCBOT_PROJECT_DIR``, the repository), ``models``
    where models go (default: ``DVCBOT_MODELS_DIR``, else ``<root>/models``). The full Rasa log is written to
    ``<root>/var/train.log``; earlier models stay in ``models``.
    """
    if root is None:
        root = _settings().project_dir
    models = models or _settings().models_path
    say = say or (lambda line: print(line, flush=True))
    current = fingerprint(root)
    decision = decide(current, models)
    if not decision.needed and not force:
        say(f"Training skipped: {decision.reason}.")
        model = current_model(models)
        assert model is not None
        return model
    reason = "forced" if force and not decision.needed else decision.reason
    say(f"Training the Rasa model ({reason}) ...")
    digest = hashlib.sha256(json.dumps(current, sort_keys=True).encode()).hexdigest()[:12]
    name = f"dvcbot-{time.strftime('%Y%m%d-%H%M%S')}-{digest}"
    models.mkdir(parents=True, exist_ok=True)
    log_path = root / "var" / "train.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    cmd = [str(rasa_bin), "train", "--config", "config.yml", "--domain", "domain",
           "--data", *[d for d in TRAIN_DATA if (root / d).exists()],
           "--out", str(models), "--fixed-model-name", name]
    progress = _Progress(started, say)
    env = rasa_env()
    if root.resolve() != PROJECT_ROOT.resolve():  # Rasa imports the nlu/ components from its working directory
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            progress.feed(line)
        returncode = proc.wait()
    model_file = f"{name}.tar.gz"
    if returncode != 0 or not (models / model_file).exists():
        for line in progress.tail:
            if _FAILURE.search(line) and "Warning" not in line:
                print(line, file=sys.stderr)
        print(f"Training failed (rasa exited with {returncode}); the whole log: {log_path}", file=sys.stderr,
              flush=True)
        raise SystemExit(returncode or 1)
    elapsed = time.monotonic() - started
    _record(models, model_file, current, elapsed, reason)
    say(f"Trained {model_file} in {elapsed:.0f} s (log: {log_path}).")
    return models / model_file
