"""Evaluate the NLU model: held-out accuracy per intent and per writing style, entity P/R/F1, the fallback
threshold, parse latency, cross-validation; writes ``reports/nlu.md`` and a confusion-matrix PNG
(``make eval-nlu``).

Runs in the Rasa virtualenv: ``.venv-rasa/bin/python -m nlu.evaluate``. ``--compare`` trains and scores
variants of ``config.yml`` side by side (the "Choices" tables of the report).
"""

from __future__ import annotations

import argparse
import asyncio
import copy
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
CONFIG = ROOT / "config.yml"
HELDOUT = ROOT / "data" / "heldout" / "nlu.yml"
NOISE = ROOT / "data" / "heldout" / "noise.yml"
CHOICES = ROOT / "reports" / "nlu_choices.md"
TRAIN_DATA = ROOT / "data" / "nlu"
FALLBACK = "nlu_fallback"
OUT_OF_SCOPE = "out_of_scope"
THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
BANDS = ((0.0, 0.2), (0.2, 0.25), (0.25, 0.3), (0.3, 0.35), (0.35, 0.4), (0.4, 0.5), (0.5, 0.7), (0.7, 1.01))
# Rasa's FallbackClassifier defaults
DEFAULT_THRESHOLD = 0.3
DEFAULT_AMBIGUITY = 0.1


@dataclass
class Example:
    text: str
    intent: str
    entities: list[tuple[str, str]]
    style: str = "clean"


@dataclass
class Prediction:
    intent: str
    """What the model answered, ``nlu_fallback`` included."""
    confidence: float
    ranking: list[tuple[str, float]]
    """The intent classifier's ranking before the FallbackClassifier."""
    entities: list[tuple[str, str]]
    seconds: float

    @property
    def top(self) -> tuple[str, float]:
        return self.ranking[0] if self.ranking else (self.intent, self.confidence)


@dataclass
class Scores:
    accuracy: float
    macro_f1: float
    per_intent: dict[str, dict[str, float]]
    per_style: dict[str, tuple[float, int]]
    entities: dict[str, tuple[float, float, float, int]]
    errors: list[tuple[Example, Prediction]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    matrix: Any = None


@dataclass
class CrossValidation:
    folds: list[tuple[float, float]]
    """(intent accuracy, macro-F1) per fold."""
    examples: list[Example]
    predictions: list[Prediction]


# ---------------------------------------------------------------------------------------------- data


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


def read_noise(path: Path = NOISE) -> list[str]:
    """Inputs that are no question at all (``data/heldout/noise.yml``)."""
    import yaml

    if not path.is_file():
        return []
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return [str(text) for text in data.get("noise") or []]


def read_config(path: Path) -> dict[str, Any]:
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def fallback_settings(config: dict[str, Any]) -> tuple[float, float]:
    """(threshold, ambiguity_threshold) of the pipeline's FallbackClassifier."""
    for component in config.get("pipeline") or []:
        if str(component.get("name", "")).endswith("FallbackClassifier"):
            return (
                float(component.get("threshold", DEFAULT_THRESHOLD)),
                float(component.get("ambiguity_threshold", DEFAULT_AMBIGUITY)),
            )
    return 0.0, 0.0


def with_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with ``{"Component.key": value}`` set (component named by the end of its name)."""
    out = copy.deepcopy(config)
    for dotted, value in overrides.items():
        component_name, key = dotted.rsplit(".", 1)
        matches = [c for c in out.get("pipeline") or [] if str(c.get("name", "")).endswith(component_name)]
        if not matches:
            raise SystemExit(f"no pipeline component named like '{component_name}' in the config")
        for component in matches:
            if value is None:
                component.pop(key, None)
            else:
                component[key] = value
    return out


# ------------------------------------------------------------------------------ training and parsing


def train_nlu(nlu_path: Path, out_dir: Path, name: str, config: Path = CONFIG) -> tuple[Path, float]:
    """Train an NLU-only model; returns (model file, seconds)."""
    from rasa.model_training import train_nlu as rasa_train_nlu

    started = time.monotonic()
    model = rasa_train_nlu(str(config), str(nlu_path), str(out_dir), fixed_model_name=name, domain=str(ROOT / "domain"))
    if not model:
        raise SystemExit("NLU training failed")
    return Path(model), time.monotonic() - started


def load_agent(model: Path) -> tuple[Any, float]:
    from rasa.core.agent import Agent

    started = time.monotonic()
    agent = Agent.load(str(model))
    return agent, time.monotonic() - started


def fresh_load_seconds(model: Path) -> float:
    """Seconds ``Agent.load`` takes in a new Python process, after Rasa is imported (as a server starts)."""
    import subprocess

    code = (
        "import sys, time\n"
        "from rasa.core.agent import Agent\n"
        "started = time.perf_counter()\n"
        "Agent.load(sys.argv[1])\n"
        "print(time.perf_counter() - started)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", code, str(model)], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )
    return float(done.stdout.strip().splitlines()[-1])


def parse_result(parsed: dict[str, Any], seconds: float) -> Prediction:
    """A Prediction from Rasa's parse output."""
    intent = parsed.get("intent") or {}
    ranking = [
        (str(r.get("name")), float(r.get("confidence") or 0))
        for r in parsed.get("intent_ranking") or []
        if r.get("name") != FALLBACK
    ]
    entities = [(e["entity"], str(e["value"])) for e in parsed.get("entities") or []]
    return Prediction(str(intent.get("name")), float(intent.get("confidence") or 0), ranking, entities, seconds)


def predict(agent: Any, texts: list[str]) -> list[Prediction]:
    async def run() -> list[Prediction]:
        out = []
        for text in texts:
            started = time.perf_counter()
            parsed = await agent.parse_message(text)
            out.append(parse_result(parsed, time.perf_counter() - started))
        return out

    return asyncio.run(run())


# ------------------------------------------------------------------------------------------- scoring


def entity_key(entity: str, value: str) -> str:
    """The form two values of ``entity`` are compared in.

    ``location`` by place (case, diacritics and "phường"/"p."/"quận" prefixes ignored), ``dossier_code`` in
    its canonical form, ``phone_digits`` by its digits, anything else as it is.
    """
    from nlu.gazetteer import place_key
    from nlu.normalize import find_dossier_codes

    if entity == "location":
        return place_key(value)
    if entity == "dossier_code":
        codes = find_dossier_codes(value)
        return codes[0][2] if codes else value.strip().upper()
    if entity == "phone_digits":
        return "".join(ch for ch in value if ch.isdigit())
    return value


def decide(prediction: Prediction, threshold: float, ambiguity: float) -> str:
    """The intent the FallbackClassifier would let through at these settings."""
    ranking = prediction.ranking
    if not ranking:
        return prediction.intent
    top = ranking[0][1]
    second = ranking[1][1] if len(ranking) > 1 else 0.0
    if top < threshold or top - second < ambiguity:
        return FALLBACK
    return ranking[0][0]


def score_entities(examples: list[Example], preds: list[Prediction]) -> dict[str, tuple[float, float, float, int]]:
    """Precision, recall, F1 and gold count per entity type, values compared by :func:`entity_key`."""
    entities = {}
    for ent in sorted({e for ex in examples for e, _ in ex.entities}):
        tp = fp = fn = 0
        for ex, pr in zip(examples, preds, strict=True):
            g = Counter(entity_key(e, v) for e, v in ex.entities if e == ent)
            q = Counter(entity_key(e, v) for e, v in pr.entities if e == ent)
            tp += sum((g & q).values())
            fp += sum((q - g).values())
            fn += sum((g - q).values())
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        entities[ent] = (prec, rec, f1, tp + fn)
    return entities


def score(examples: list[Example], preds: list[Prediction]) -> Scores:
    """Intent accuracy (a fallback counts as wrong), macro-F1, per intent, per style; entity P/R/F1."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    gold = [e.intent for e in examples]
    pred = [p.intent for p in preds]
    labels = sorted(set(gold) | (set(pred) - {FALLBACK})) + ([FALLBACK] if FALLBACK in pred else [])
    p, r, f, support = precision_recall_fscore_support(gold, pred, labels=labels, zero_division=0)
    per_intent = {
        lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(support[i])}
        for i, lab in enumerate(labels)
        if support[i]
    }
    by_style: dict[str, list[bool]] = defaultdict(list)
    for ex, pr in zip(examples, preds, strict=True):
        by_style[ex.style].append(ex.intent == pr.intent)
    per_style = {s: (sum(v) / len(v), len(v)) for s, v in sorted(by_style.items())}
    entities = score_entities(examples, preds)
    errors = [(ex, pr) for ex, pr in zip(examples, preds, strict=True) if ex.intent != pr.intent]
    return Scores(
        accuracy=float(accuracy_score(gold, pred)),
        macro_f1=float(f1_score(gold, pred, labels=sorted(set(gold)), average="macro", zero_division=0)),
        per_intent=per_intent,
        per_style=per_style,
        entities=entities,
        errors=errors,
        labels=labels,
        matrix=confusion_matrix(gold, pred, labels=labels),
    )


def entity_mismatches(examples: list[Example], preds: list[Prediction]) -> list[tuple[str, str, str]]:
    """(text, expected, found) for held-out messages whose entities were not all found exactly."""
    out = []
    for ex, pr in zip(examples, preds, strict=True):
        kinds = {e for e, _ in ex.entities}
        g = sorted((e, entity_key(e, v)) for e, v in ex.entities)
        q = sorted((e, entity_key(e, v)) for e, v in pr.entities if e in kinds)
        if g != q:
            out.append((ex.text, ", ".join(f"{e}={v}" for e, v in g), ", ".join(f"{e}={v}" for e, v in q) or "—"))
    return out


def cross_validate(folds: int, workdir: Path, config: Path = CONFIG) -> CrossValidation:
    """Stratified k-fold over the training data: scores per fold and every held-back prediction."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.training_data import TrainingData
    from sklearn.model_selection import StratifiedKFold

    data = load_data(str(TRAIN_DATA))
    msgs = data.intent_examples
    intents = [m.get("intent") for m in msgs]
    result = CrossValidation([], [], [])
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
        model, _ = train_nlu(path, workdir, f"fold{i}", config)
        agent, _ = load_agent(model)
        test = [
            Example(
                msgs[j].get("text"),
                msgs[j].get("intent"),
                [(e["entity"], str(e["value"])) for e in msgs[j].get("entities") or []],
            )
            for j in test_idx
        ]
        preds = predict(agent, [e.text for e in test])
        s = score(test, preds)
        result.folds.append((s.accuracy, s.macro_f1))
        result.examples += test
        result.predictions += preds
        print(f"fold {i}/{folds}: intent accuracy {s.accuracy:.3f}, macro-F1 {s.macro_f1:.3f}", flush=True)
    return result


# ---------------------------------------------------------------------------------- fallback tables


def threshold_rows(
    examples: list[Example],
    preds: list[Prediction],
    cv: CrossValidation | None,
    noise: list[Prediction],
    ambiguity: float,
) -> list[str]:
    """Markdown rows: what each fallback threshold does to held-out, cross-validation and noise inputs."""
    rows = []
    oos = [(e, p) for e, p in zip(examples, preds, strict=True) if e.intent == OUT_OF_SCOPE]
    for threshold in THRESHOLDS:
        decided = [decide(p, threshold, ambiguity) for p in preds]
        gold = [e.intent for e in examples]
        acc = sum(d == g for d, g in zip(decided, gold, strict=True)) / len(gold)
        answered = sum(d != FALLBACK for d in decided) / len(gold)
        wrong = sum(d not in (g, FALLBACK) for d, g in zip(decided, gold, strict=True)) / len(gold)
        cells = [f"{threshold:.2f}", f"{acc:.1%}", f"{answered:.1%}", f"{wrong:.1%}"]
        if cv is not None:
            cv_decided = [decide(p, threshold, ambiguity) for p in cv.predictions]
            cv_gold = [e.intent for e in cv.examples]
            cv_acc = sum(d == g for d, g in zip(cv_decided, cv_gold, strict=True)) / len(cv_gold)
            cv_wrong = sum(d not in (g, FALLBACK) for d, g in zip(cv_decided, cv_gold, strict=True)) / len(cv_gold)
            cells += [f"{cv_acc:.1%}", f"{cv_wrong:.1%}"]
        oos_decided = [decide(p, threshold, ambiguity) for _, p in oos]
        cells.append(
            f"{oos_decided.count(FALLBACK)} / {oos_decided.count(OUT_OF_SCOPE)} / "
            f"{len(oos_decided) - oos_decided.count(FALLBACK) - oos_decided.count(OUT_OF_SCOPE)}"
        )
        if noise:
            noise_decided = [decide(p, threshold, ambiguity) for p in noise]
            cells.append(
                f"{noise_decided.count(FALLBACK)} / {noise_decided.count(OUT_OF_SCOPE)} / "
                f"{len(noise) - noise_decided.count(FALLBACK) - noise_decided.count(OUT_OF_SCOPE)}"
            )
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def calibration_rows(cv: CrossValidation) -> list[str]:
    """Markdown rows: how often the classifier's top intent is right, by its confidence (cross-validation)."""
    rows = []
    for low, high in BANDS:
        inside = [
            (e, p) for e, p in zip(cv.examples, cv.predictions, strict=True) if p.ranking and low <= p.top[1] < high
        ]
        right = sum(p.top[0] == e.intent for e, p in inside)
        share = f"{right / len(inside):.0%}" if inside else "—"
        rows.append(f"| {low:.2f}–{min(high, 1.0):.2f} | {len(inside)} | {share} |")
    gaps = ((0.0, 0.05), (0.05, 0.1), (0.1, 0.2))
    for low, high in gaps:
        inside = [
            (e, p)
            for e, p in zip(cv.examples, cv.predictions, strict=True)
            if len(p.ranking) > 1 and low <= p.ranking[0][1] - p.ranking[1][1] < high
        ]
        right = sum(p.top[0] == e.intent for e, p in inside)
        share = f"{right / len(inside):.0%}" if inside else "—"
        rows.append(f"| top-two gap {low:.2f}–{high:.2f} | {len(inside)} | {share} |")
    return rows


# ------------------------------------------------------------------------------------------ output


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
                color = "white" if value > scores.matrix.max() / 2 else "black"
                ax.text(j, i, str(value), ha="center", va="center", fontsize=7, color=color)
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


def cell(text: str) -> str:
    return text.replace("|", "/").replace("\n", " ")


def write_report(
    path: Path,
    scores: Scores,
    examples: list[Example],
    preds: list[Prediction],
    noise: list[Prediction],
    noise_texts: list[str],
    timings: dict[str, float],
    cv: CrossValidation | None,
    png: Path | None,
    n_train: int,
    fallback: tuple[float, float],
    command: str,
) -> None:
    lat = [p.seconds * 1000 for p in preds]
    threshold, ambiguity = fallback
    lines = [
        "# NLU evaluation",
        "",
        f"Produced by `{command}` on {time.strftime('%Y-%m-%d %H:%M')} (2-core machine). Training data: "
        f"{n_train} examples in `data/nlu/`; held-out: {len(preds)} utterances in `data/heldout/nlu.yml` "
        f"(never trained on). A prediction of `{FALLBACK}` counts as wrong. Fallback: threshold {threshold}, "
        f"ambiguity threshold {ambiguity}.",
        "",
        "## Summary",
        "",
        "| measure | value |",
        "| --- | --- |",
        f"| held-out intent accuracy | {scores.accuracy:.1%} |",
        f"| held-out intent macro-F1 | {scores.macro_f1:.3f} |",
    ]
    for ent, (p, r, f, n) in scores.entities.items():
        lines.append(f"| entity `{ent}` P / R / F1 (n={n}) | {p:.3f} / {r:.3f} / {f:.3f} |")
    if cv and cv.folds:
        accs = [a for a, _ in cv.folds]
        f1s = [f for _, f in cv.folds]
        lines.append(
            f"| {len(cv.folds)}-fold cross-validation accuracy / macro-F1 (mean ± sd) | "
            f"{statistics.mean(accs):.1%} ± {statistics.pstdev(accs):.1%} / "
            f"{statistics.mean(f1s):.3f} ± {statistics.pstdev(f1s):.3f} |"
        )
    lines += [
        f"| parse latency p50 / p95 / max | {percentile(lat, 0.5):.1f} / {percentile(lat, 0.95):.1f} / "
        f"{max(lat):.1f} ms |",
    ]
    if "train" in timings:
        lines.append(f"| NLU training time (this run, no cache) | {timings['train']:.0f} s |")
    lines += [
        f"| model load time (new process, after importing Rasa) | {timings.get('load', 0):.1f} s |",
        "",
        "## Accuracy per writing style",
        "",
        "| style | accuracy | n |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {s} | {a:.1%} | {n} |" for s, (a, n) in scores.per_style.items()]
    lines += [
        "",
        "## Fallback threshold",
        "",
        f"With the ambiguity threshold at {ambiguity}: accuracy counts a fallback as wrong; *answered* is the "
        "share that gets an intent rather than the fallback; *wrong* is the share answered with a wrong intent. "
        f"Out-of-scope and noise columns: fallback / `{OUT_OF_SCOPE}` / another intent (noise: "
        f"{len(noise)} inputs of `data/heldout/noise.yml` — keyboard mashing, emoji, other scripts).",
        "",
    ]
    header = "| threshold | held-out accuracy | answered | wrong |"
    rule = "| --- | --- | --- | --- |"
    if cv and cv.predictions:
        header += " CV accuracy | CV wrong |"
        rule += " --- | --- |"
    n_oos = sum(e.intent == OUT_OF_SCOPE for e in examples)
    header += f" held-out out_of_scope (n={n_oos}) |"
    rule += " --- |"
    if noise:
        header += f" noise (n={len(noise)}) |"
        rule += " --- |"
    lines += [header, rule, *threshold_rows(examples, preds, cv, noise, ambiguity)]
    answered_noise = [
        f"{cell(text)!r} → {p.intent}"
        for text, p in zip(noise_texts, noise, strict=True)
        if p.intent not in (FALLBACK, OUT_OF_SCOPE)
    ]
    if answered_noise:
        lines += ["", f"Noise answered with an intent at threshold {threshold}: " + ", ".join(answered_noise) + "."]
    if cv and cv.predictions:
        lines += [
            "",
            "How often the classifier's top intent is right, by its confidence and by the gap to the second "
            f"intent ({len(cv.predictions)} cross-validation predictions):",
            "",
            "| confidence | n | right |",
            "| --- | --- | --- |",
            *calibration_rows(cv),
        ]
    lines += ["", "## Entities", "", "| entity | precision | recall | F1 | n |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {ent} | {p:.3f} | {r:.3f} | {f:.3f} | {n} |" for ent, (p, r, f, n) in scores.entities.items()]
    lines += [
        "",
        '`location` is compared by place (case, diacritics and prefixes such as "phường", "p.", "quận" '
        "ignored), `dossier_code` in its canonical form, `procedure` by catalog id.",
    ]
    mismatches = entity_mismatches(examples, preds)
    if mismatches:
        lines += ["", "| text | expected | found |", "| --- | --- | --- |"]
        lines += [f"| {cell(t)} | {cell(g)} | {cell(q)} |" for t, g, q in mismatches]
    lines += ["", "## Per intent", "", "| intent | precision | recall | F1 | n |", "| --- | --- | --- | --- | --- |"]
    lines += [
        f"| {k} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
        for k, v in scores.per_intent.items()
    ]
    if png:
        lines += ["", f"Confusion matrix: `{png.name}` beside this report (regenerated, not committed)."]
    if CHOICES.is_file():
        lines += ["", CHOICES.read_text(encoding="utf-8").strip()]
    lines += [
        "",
        "## Errors",
        "",
        "| text | style | expected | answered | classifier's top intent (confidence) |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {cell(ex.text)} | {ex.style} | {ex.intent} | {pr.intent} | {pr.top[0]} ({pr.top[1]:.2f}) |"
        for ex, pr in scores.errors
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------------------------- compare


def compare(variants: list[tuple[str, dict[str, Any]]], folds: int, examples: list[Example]) -> list[str]:
    """Markdown table rows, one per config variant: CV, held-out per style, train/load/parse times."""
    import yaml

    base = read_config(CONFIG)
    styles = sorted({e.style for e in examples})
    rows = [
        "| variant | CV accuracy (mean ± sd) | held-out | "
        + " | ".join(styles)
        + " | noise to fallback | train | load | parse p50 / p95 |",
        "| --- | --- | --- | " + " | ".join("---" for _ in styles) + " | --- | --- | --- | --- |",
    ]
    noise_texts = read_noise()
    for label, overrides in variants:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.yml"
            config.write_text(yaml.safe_dump(with_overrides(base, overrides), allow_unicode=True), encoding="utf-8")
            model, train_seconds = train_nlu(TRAIN_DATA, Path(tmp), "variant", config)
            agent, _ = load_agent(model)
            load_seconds = fresh_load_seconds(model)
            predict(agent, [e.text for e in examples[:5]])
            preds = predict(agent, [e.text for e in examples])
            s = score(examples, preds)
            noise = predict(agent, noise_texts)
            cv = cross_validate(folds, Path(tmp), config) if folds > 1 else None
        lat = [p.seconds * 1000 for p in preds]
        accs = [a for a, _ in cv.folds] if cv else []
        cv_cell = f"{statistics.mean(accs):.1%} ± {statistics.pstdev(accs):.1%}" if accs else "—"
        row = [label, cv_cell, f"{s.accuracy:.1%}"]
        row += [f"{s.per_style[st][0]:.1%}" if st in s.per_style else "—" for st in styles]
        row.append(f"{sum(p.intent == FALLBACK for p in noise)} / {len(noise)}")
        row += [
            f"{train_seconds:.0f} s",
            f"{load_seconds:.1f} s",
            f"{percentile(lat, 0.5):.1f} / {percentile(lat, 0.95):.1f} ms",
        ]
        rows.append("| " + " | ".join(row) + " |")
        print(rows[-1], flush=True)
    return rows


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"label|Component.key=value;Component.key=value"`` → (label, overrides); values are YAML scalars."""
    import yaml

    label, _, spec = text.partition("|")
    overrides: dict[str, Any] = {}
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return label.strip(), overrides


# -------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlu.evaluate", description=__doc__)
    parser.add_argument("--model", type=Path, help="evaluate this model instead of training a fresh NLU model")
    parser.add_argument("--heldout", type=Path, default=HELDOUT)
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: none)")
    parser.add_argument("--report", type=Path, default=ROOT / "reports" / "nlu.md")
    parser.add_argument("--png", type=Path, default=ROOT / "reports" / "nlu_confusion.png")
    parser.add_argument("--min-accuracy", type=float, default=0.0, help="exit 1 below this held-out accuracy")
    parser.add_argument("--json", type=Path, help="also write the held-out scores, per intent, as JSON (dvcbot eval)")
    parser.add_argument(
        "--compare",
        action="append",
        metavar="VARIANT",
        help='compare config variants instead: "label|Component.key=value;..." (repeat; "label|" is config.yml)',
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Measure real training times: Rasa's training cache would reuse components from an earlier run.
    os.environ.setdefault("RASA_MAX_CACHE_SIZE", "0")
    logging.basicConfig(level=logging.WARNING)

    from rasa.shared.nlu.training_data.loading import load_data

    examples = read_examples(args.heldout)
    if args.compare:
        rows = compare([parse_variant(v) for v in args.compare], args.folds, examples)
        print("\n".join(rows))
        return 0

    n_train = len(load_data(str(TRAIN_DATA)).intent_examples)
    fallback = fallback_settings(read_config(CONFIG))
    noise_texts = read_noise()
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model, timings["train"] = train_nlu(TRAIN_DATA, Path(tmp), "eval")
        agent, _ = load_agent(model)
        timings["load"] = fresh_load_seconds(model)
        predict(agent, [e.text for e in examples[:5]])  # warm-up, not measured
        preds = predict(agent, [e.text for e in examples])
        noise = predict(agent, noise_texts)
        scores = score(examples, preds)
        cv = cross_validate(args.folds, Path(tmp)) if args.folds > 1 else None
    draw_confusion(scores, args.png)
    command = (
        "make eval-nlu"
        if args.folds == 5 and args.model is None
        else "python -m nlu.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
    )
    write_report(
        args.report, scores, examples, preds, noise, noise_texts, timings, cv, args.png, n_train, fallback, command
    )
    summary: dict[str, Any] = {
        "accuracy": round(scores.accuracy, 4),
        "macro_f1": round(scores.macro_f1, 4),
        "per_style": {k: round(v[0], 4) for k, v in scores.per_style.items()},
        "entity_f1": {k: round(v[2], 4) for k, v in scores.entities.items()},
        "parse_p50_ms": round(percentile([p.seconds * 1000 for p in preds], 0.5), 1),
        "parse_p95_ms": round(percentile([p.seconds * 1000 for p in preds], 0.95), 1),
        "noise_to_fallback": sum(p.intent == FALLBACK for p in noise),
        **{k: round(v, 1) for k, v in timings.items()},
    }
    if cv and cv.folds:
        summary["cv_accuracy"] = [round(a, 4) for a, _ in cv.folds]
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
