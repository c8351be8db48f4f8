"""Evaluate the NLU model: held-out accuracy per intent and per writing style, entity F1, parse latency,
cross-validation; writes ``reports/nlu.md`` and a confusion-matrix PNG (``make eval-nlu``).

Runs in the Rasa virtualenv: ``.venv-rasa/bin/python -m nlu.evaluate``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HELDOUT = ROOT / "data" / "heldout" / "nlu.yml"
TRAIN_DATA = ROOT / "data" / "nlu"


@dataclass
class Example:
    text: str
    intent: str
    entities: list[tuple[str, str]]
    style: str = "clean"


@dataclass
class Prediction:
    intent: str
    confidence: float
    entities: list[tuple[str, str]]
    seconds: float


@dataclass
class Scores:
    accuracy: float
    macro_f1: float
    per_intent: dict[str, dict[str, float]]
    per_style: dict[str, tuple[float, int]]
    entity_f1: dict[str, tuple[float, float, float, int]]
    errors: list[tuple[Example, Prediction]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    matrix: Any = None


def read_examples(path: Path) -> list[Example]:
    """Read a Rasa NLU YAML file; the style comes from each example's ``metadata.style``."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    out = []
    for msg in data.intent_examples:
        meta = msg.get("metadata") or {}
        example_meta = meta.get("example") if isinstance(meta.get("example"), dict) else meta
        style = str((example_meta or {}).get("style") or "clean")
        entities = [(e["entity"], str(e["value"])) for e in msg.get("entities") or []]
        out.append(Example(msg.get("text").strip(), msg.get("intent"), entities, style))
    return out


def train_nlu(nlu_path: Path, out_dir: Path, name: str) -> tuple[Path, float]:
    """Train an NLU-only model with the project's config; returns (model file, seconds)."""
    from rasa.model_training import train_nlu as rasa_train_nlu

    started = time.monotonic()
    model = rasa_train_nlu(
        str(ROOT / "config.yml"), str(nlu_path), str(out_dir), fixed_model_name=name, domain=str(ROOT / "domain")
    )
    if not model:
        raise SystemExit("NLU training failed")
    return Path(model), time.monotonic() - started


def load_agent(model: Path) -> tuple[Any, float]:
    from rasa.core.agent import Agent

    started = time.monotonic()
    agent = Agent.load(str(model))
    return agent, time.monotonic() - started


def predict(agent: Any, examples: list[Example]) -> list[Prediction]:
    async def run() -> list[Prediction]:
        out = []
        for ex in examples:
            started = time.perf_counter()
            parsed = await agent.parse_message(ex.text)
            elapsed = time.perf_counter() - started
            intent = parsed.get("intent") or {}
            ents = [(e["entity"], str(e["value"])) for e in parsed.get("entities") or []]
            out.append(Prediction(str(intent.get("name")), float(intent.get("confidence") or 0), ents, elapsed))
        return out

    return asyncio.run(run())


def score(examples: list[Example], preds: list[Prediction], fallback: str = "nlu_fallback") -> Scores:
    """Intent accuracy (a fallback counts as wrong), macro-F1, per intent, per style; entity P/R/F1."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    gold = [e.intent for e in examples]
    pred = [p.intent for p in preds]
    labels = sorted(set(gold) | (set(pred) - {fallback})) + ([fallback] if fallback in pred else [])
    p, r, f, support = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    per_intent = {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, lab in enumerate(labels)
        if support[i]
    }
    by_style: dict[str, list[bool]] = defaultdict(list)
    for ex, pr in zip(examples, preds, strict=False):
        by_style[ex.style].append(ex.intent == pr.intent)
    per_style = {s: (sum(v) / len(v), len(v)) for s, v in sorted(by_style.items())}
    entity_f1 = {}
    for ent in sorted({e for ex in examples for e, _ in ex.entities}):
        tp = fp = fn = 0
        for ex, pr in zip(examples, preds, strict=False):
            g = Counter(v for e, v in ex.entities if e == ent)
            q = Counter(v for e, v in pr.entities if e == ent)
            tp += sum((g & q).values())
            fp += sum((q - g).values())
            fn += sum((g - q).values())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        entity_f1[ent] = (prec, rec, f1, tp + fn)
    errors = [(ex, pr) for ex, pr in zip(examples, preds, strict=False) if ex.intent != pr.intent]
    return Scores(
        accuracy=float(accuracy_score(gold, pred)),
        macro_f1=float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0)),
        per_intent=per_intent,
        per_style=per_style,
        entity_f1=entity_f1,
        errors=errors,
        labels=labels,
        matrix=confusion_matrix(gold, pred, labels=labels),
    )


def cross_validate(folds: int, workdir: Path) -> list[tuple[float, float]]:
    """Stratified k-fold over the training data: (intent accuracy, macro-F1) per fold."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from sklearn.model_selection import StratifiedKFold

    data = load_data(str(TRAIN_DATA))
    msgs = data.intent_examples
    intents = [m.get("intent") for m in msgs]
    results = []
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=13)
    for i, (train_idx, test_idx) in enumerate(splitter.split(msgs, intents), 1):
        train = TrainingData(
            [msgs[j] for j in train_idx],
            entity_synonyms=data.entity_synonyms,
            regex_features=data.regex_features,
            lookup_tables=data.lookup_tables,
        )
        path = workdir / f"fold{i}.yml"
        path.write_text(RasaYAMLWriter().dumps(train), encoding="utf-8")
        model, _ = train_nlu(path, workdir, f"fold{i}")
        agent, _ = load_agent(model)
        test = [
            Example(
                msgs[j].get("text"),
                msgs[j].get("intent"),
                [(e["entity"], str(e["value"])) for e in msgs[j].get("entities") or []],
            )
            for j in test_idx
        ]
        s = score(test, predict(agent, test))
        results.append((s.accuracy, s.macro_f1))
        print(f"fold {i}/{folds}: intent accuracy {s.accuracy:.3f}, macro-F1 {s.macro_f1:.3f}", flush=True)
    return results


def draw_confusion(scores: Scores, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(scores.labels)
    fig, ax = plt.subplots(figsize=(0.45 * n + 3, 0.45 * n + 2.5))
    ax.imshow(scores.matrix, cmap="Blues")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(scores.labels, rotation=90, fontsize=8)
    ax.set_yticklabels(scores.labels, fontsize=8)
    for i in range(n):
        for j in range(n):
            value = scores.matrix[i][j]
            if value:
                ax.text(
                    j,
                    i,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > scores.matrix.max() / 2 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Held-out intent confusion matrix")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def write_report(
    path: Path,
    scores: Scores,
    preds: list[Prediction],
    timings: dict[str, float],
    cv: list[tuple[float, float]],
    png: Path | None,
    n_train: int,
) -> None:
    lat = [p.seconds * 1000 for p in preds]
    lines = [
        "# NLU evaluation",
        "",
        f"Produced by `make eval-nlu` on {time.strftime('%Y-%m-%d %H:%M')} (2-core machine). Training data: "
        f"{n_train} examples in `data/nlu/`; held-out: {len(preds)} utterances in `data/heldout/nlu.yml` "
        "(never trained on). A prediction of `nlu_fallback` counts as wrong.",
        "",
        "## Summary",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| held-out intent accuracy | {scores.accuracy:.1%} |",
        f"| held-out intent macro-F1 | {scores.macro_f1:.3f} |",
    ]
    for ent, (p, r, f, n) in scores.entity_f1.items():
        lines.append(f"| entity `{ent}` P / R / F1 (n={n}) | {p:.3f} / {r:.3f} / {f:.3f} |")
    if cv:
        accs = [a for a, _ in cv]
        lines.append(
            f"| {len(cv)}-fold cross-validation accuracy (mean ± sd) | "
            f"{statistics.mean(accs):.1%} ± {statistics.pstdev(accs):.1%} |"
        )
    lines += [
        f"| parse latency p50 / p95 / max | {percentile(lat, 0.5):.1f} / {percentile(lat, 0.95):.1f} / "
        f"{max(lat):.1f} ms |",
        f"| NLU training time | {timings.get('train', 0):.0f} s |",
        f"| model load time | {timings.get('load', 0):.1f} s |",
        "",
        "## Accuracy per writing style",
        "",
        "| style | accuracy | n |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {s} | {a:.1%} | {n} |" for s, (a, n) in scores.per_style.items()]
    lines += ["", "## Per intent", "", "| intent | precision | recall | F1 | n |", "| --- | --- | --- | --- | --- |"]
    lines += [
        f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
        for k, v in scores.per_intent.items()
    ]
    if png:
        lines += ["", f"Confusion matrix: `{png.name}` beside this report (regenerated, not committed)."]
    lines += ["", "## Errors", "", "| text | style | expected | predicted (confidence) |", "| --- | --- | --- | --- |"]
    lines += [
        f"| {ex.text.replace('|', '/')} | {ex.style} | {ex.intent} | {pr.intent} ({pr.confidence:.2f}) |"
        for ex, pr in scores.errors
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlu.evaluate", description=__doc__)
    parser.add_argument("--model", type=Path, help="evaluate this model instead of training a fresh NLU model")
    parser.add_argument("--heldout", type=Path, default=HELDOUT)
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: none)")
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "nlu.md")
    parser.add_argument("--png", type=Path, default=ROOT / "reports" / "nlu_confusion.png")
    parser.add_argument("--min-accuracy", type=float, default=0.0, help="exit 1 below this held-out accuracy")
    parser.add_argument("--json", type=Path, help="also write the held-out scores, per intent, as JSON here")
    args = parser.parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    logging.basicConfig(level=logging.WARNING)

    from rasa.shared.nlu.training_data.loading import load_data

    n_train = len(load_data(str(TRAIN_DATA)).intent_examples)
    examples = read_examples(args.heldout)
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model, timings["train"] = train_nlu(TRAIN_DATA, Path(tmp), "eval")
        agent, timings["load"] = load_agent(model)
        predict(agent, examples[:5])  # warm-up, not measured
        preds = predict(agent, examples)
        scores = score(examples, preds)
        cv = cross_validate(args.folds, Path(tmp)) if args.folds > 1 else []
    draw_confusion(scores, args.png)
    write_report(args.report, scores, preds, timings, cv, args.png, n_train)
    summary = {
        "accuracy": round(scores.accuracy, 4),
        "macro_f1": round(scores.macro_f1, 4),
        "per_style": {k: round(v[0], 4) for k, v in scores.per_style.items()},
        "entity_f1": {k: round(v[2], 4) for k, v in scores.entity_f1.items()},
        "parse_p95_ms": round(percentile([p.seconds * 1000 for p in preds], 0.95), 1),
        **timings,
    }
    if args.json:
        errors = [{"text": ex.text, "intent": ex.intent, "predicted": pr.intent, "confidence": round(pr.confidence, 3)}
                  for ex, pr in scores.errors]
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**summary, "n": len(examples), "per_intent": scores.per_intent,
                                         "errors": errors}, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps(summary, ensure_ascii=False))
    print(f"Report: {args.report}")
    if scores.accuracy < args.min_accuracy:
        print(f"Held-out intent accuracy {scores.accuracy:.1%} is below {args.min_accuracy:.1%}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
