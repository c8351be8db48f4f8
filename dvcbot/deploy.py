"""Compare, deploy and roll back models on the running Rasa server (``dvcbot eval``, ``deploy``, ``rollback``).

The Rasa HTTP API (token-protected, 127.0.0.1 only) loads a model with ``PUT /model`` while it keeps serving:
the old model answers until the new one is ready, then the server switches over. With several Rasa replicas
(``DVCBOT_RASA_URLS``, or the file ``make run-prod`` writes) they switch one at a time, each checked through
``GET /status`` (file name and fingerprint) before the next; when one fails, those already switched go back to the
model they had. ``PUT /model`` gets the model's *path* (Rasa 3.6 takes ``model_file``, a file on its own
filesystem, or a model server or cloud storage to pull from; never the bytes), so every replica must see the file
at that path: true on one machine, shared storage across machines (docs/deploy.md). Which models were live, in
order, is kept in ``var/deployments.json`` so that ``rollback`` can bring back the one before.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from dvcbot import PROJECT_ROOT
from dvcbot.settings import Settings
from dvcbot.supervisor import RASA_URLS_FILE, TOKEN_FILE
from dvcbot.training import MODELS, current_model, rasa_env

RASA_PY = PROJECT_ROOT / ".venv-rasa" / "bin" / "python"
HELDOUT = PROJECT_ROOT / "data" / "heldout" / "nlu.yml"
STATE_FILE = PROJECT_ROOT / "var" / "deployments.json"
EVALUATIONS = "evaluations.json"  # in models/: held-out scores by model and held-out content
KEEP_EVALUATIONS = 30
KEEP_LOG = 50
LOAD_TIMEOUT = 300.0

Say = Callable[[str], None]


class DeployError(Exception):
    """Something an editor must fix before deploying; the message says what."""


def _say(line: str) -> None:
    print(line, flush=True)


# ---------------------------------------------------------------------------------------------------------------
# The running server


def read_token(settings: Settings, token_file: Path = TOKEN_FILE) -> str | None:
    """The Rasa API token: ``DVCBOT_RASA_TOKEN``, else the one ``make run`` wrote to ``var/rasa-token``."""
    if settings.rasa_token is not None:
        return settings.rasa_token.get_secret_value()
    try:
        return token_file.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


@dataclass
class RasaServer:
    """The token-protected HTTP API of one Rasa server."""

    url: str
    token: str | None
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    @classmethod
    def from_settings(cls, settings: Settings, token_file: Path = TOKEN_FILE) -> RasaServer:
        return cls(settings.rasa_url, read_token(settings, token_file))

    @classmethod
    def replicas(cls, settings: Settings, token_file: Path = TOKEN_FILE,
                 urls_file: Path = RASA_URLS_FILE) -> list[RasaServer]:
        """Every Rasa server a deploy goes to: ``DVCBOT_RASA_URLS``; else the replicas of a running
        ``make run-prod`` (it writes them to ``var/rasa-urls``); else the one at ``rasa_url``."""
        token = read_token(settings, token_file)
        urls = settings.rasa_replica_urls if settings.rasa_urls else read_urls(urls_file) or [settings.rasa_url]
        return [cls(url, token) for url in urls]

    def _params(self) -> dict[str, str]:
        return {"token": self.token} if self.token else {}

    def _fail(self, what: str, resp: httpx.Response) -> DeployError:
        if resp.status_code in (401, 403):
            return DeployError(f"the Rasa server at {self.url} refused the token ({resp.status_code}); set "
                               "DVCBOT_RASA_TOKEN to the token it was started with (`make run` writes its own "
                               f"to {_rel(TOKEN_FILE)})")
        try:
            detail = resp.json().get("message") or resp.text
        except ValueError:
            detail = resp.text
        return DeployError(f"{what} failed: HTTP {resp.status_code}: {str(detail)[:300]}")

    def status(self) -> dict[str, Any]:
        """``GET /status``: ``model_file`` (the file name of the live model), ``model_id``."""
        try:
            resp = self.client.get(f"{self.url}/status", params=self._params())
        except httpx.HTTPError as exc:
            raise DeployError(f"the Rasa server at {self.url} is not reachable ({exc.__class__.__name__}); "
                              "is `make run` running?") from exc
        if resp.status_code != 200:
            raise self._fail("GET /status", resp)
        data: dict[str, Any] = resp.json()
        return data

    def live_model(self) -> str:
        return str(self.status().get("model_file") or "")

    def switch(self, model: Path) -> float:
        """Load ``model`` and check that ``/status`` reports it, by file name and fingerprint (``model_id``)."""
        seconds = self.load(model)
        status = self.status()
        now = str(status.get("model_file") or "")
        if now != model.name:
            raise DeployError(f"the Rasa server at {self.url} still reports {now!r} after loading {model.name}")
        expected = model_fingerprint(model)
        if expected is not None and status.get("model_id") != expected:
            raise DeployError(f"the Rasa server at {self.url} reports the fingerprint {status.get('model_id')!r}, "
                              f"not {expected!r} of {model.name}")
        return seconds

    def load(self, model: Path) -> float:
        """``PUT /model``: the server loads ``model`` and switches to it; returns the seconds it took."""
        started = time.monotonic()
        try:
            resp = self.client.put(f"{self.url}/model", params=self._params(),
                                   json={"model_file": str(model.resolve())}, timeout=LOAD_TIMEOUT)
        except httpx.HTTPError as exc:
            raise DeployError(f"loading {model.name} into the Rasa server failed ({exc.__class__.__name__}: "
                              f"{exc})") from exc
        if resp.status_code not in (200, 204):
            raise self._fail(f"loading {model.name}", resp)
        return time.monotonic() - started


def read_urls(path: Path = RASA_URLS_FILE) -> list[str]:
    """The Rasa replicas a running ``make run-prod`` wrote down, one URL a line; ``[]`` when there is none."""
    try:
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def model_fingerprint(model: Path) -> str | None:
    """The ``model_id`` a Rasa 3.6 model carries in its ``metadata.json`` (``/status`` reports it once loaded)."""
    try:
        with tarfile.open(model, "r:gz") as archive:
            member = archive.extractfile("metadata.json")
            if member is None:
                return None
            value = json.load(member).get("model_id")
    except (OSError, tarfile.TarError, KeyError, ValueError):
        return None  # not a model archive (tests) or unreadable: the file name is checked alone
    return str(value) if value else None


def _fleet(servers: RasaServer | Sequence[RasaServer]) -> list[RasaServer]:
    return [servers] if isinstance(servers, RasaServer) else list(servers)


def live_models(fleet: list[RasaServer]) -> dict[str, str]:
    """The live model of every replica; every one must answer before anything is switched."""
    return {server.url: server.live_model() for server in fleet}


def switch_all(fleet: list[RasaServer], model: Path, before: dict[str, str], models: Path = MODELS,
               say: Say = _say) -> float:
    """Switch the replicas to ``model`` one at a time (the others keep answering); returns the seconds the loads
    took. When one fails, the replicas already switched go back to their model in ``before`` and the
    ``DeployError`` says what happened to each."""
    total = 0.0
    switched: list[RasaServer] = []
    many = len(fleet) > 1
    for n, server in enumerate(fleet, 1):
        if before[server.url] == model.name:
            if many:
                say(f"  {n}/{len(fleet)} {server.url} already serves {model.name}")
            continue
        try:
            seconds = server.switch(model)
        except DeployError as exc:
            try:  # a load that went through but did not verify (wrong fingerprint): that one goes back too
                if server.live_model() == model.name:
                    switched.append(server)
            except DeployError:
                pass
            outcome = _restore(switched, before, models, say) if switched else "no replica had been switched"
            where = f" (replica {n} of {len(fleet)})" if many else ""
            raise DeployError(f"{exc}{where}; {outcome}") from exc
        switched.append(server)
        total += seconds
        if many:
            say(f"  {n}/{len(fleet)} {server.url} serves {model.name} ({seconds:.1f} s)")
    return total


def _restore(switched: list[RasaServer], before: dict[str, str], models: Path, say: Say) -> str:
    """Load their previous model back into ``switched``; one sentence saying how that went."""
    done, failed = [], []
    for server in reversed(switched):
        previous = models / before[server.url]
        say(f"  putting {before[server.url]} back on {server.url} ...")
        try:
            if not previous.is_file():
                raise DeployError(f"{before[server.url]} is not in {_rel(models)}/")
            server.switch(previous)
            done.append(f"{server.url} back on {before[server.url]}")
        except DeployError as exc:
            failed.append(f"{server.url} could NOT be put back on {before[server.url]} ({exc})")
    return "rolled back the replicas already switched: " + "; ".join(done + failed)


# ---------------------------------------------------------------------------------------------------------------
# Held-out evaluation


@dataclass
class Evaluation:
    model: str
    accuracy: float
    macro_f1: float
    n: int
    per_intent: dict[str, dict[str, float]]
    errors: list[dict[str, Any]]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _evaluation_key(model: Path, heldout: Path) -> str:
    return f"{_sha256(model)[:20]}:{_sha256(heldout)[:20]}"


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store_cache(path: Path, key: str, value: dict[str, Any]) -> None:
    cache = _load_cache(path)
    cache.pop(key, None)
    cache[key] = value
    cache = dict(list(cache.items())[-KEEP_EVALUATIONS:])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def evaluate(model: Path, heldout: Path = HELDOUT, models: Path = MODELS) -> Evaluation:
    """Held-out scores of ``model`` (``nlu.evaluate`` in the Rasa venv), cached by model and held-out content."""
    cache_path = models / EVALUATIONS
    key = _evaluation_key(model, heldout)
    cached = _load_cache(cache_path).get(key)
    if cached is None:
        with tempfile.TemporaryDirectory(prefix="dvcbot-eval-") as tmp:
            out = Path(tmp) / "scores.json"
            cmd = [str(RASA_PY), "-m", "nlu.evaluate", "--model", str(model.resolve()), "--folds", "0",
                   "--heldout", str(heldout.resolve()), "--report", str(Path(tmp) / "report.md"),
                   "--png", str(Path(tmp) / "confusion.png"), "--json", str(out)]
            env = {**rasa_env(), "PYTHONWARNINGS": "ignore"}
            result = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0 or not out.exists():
                tail = [ln for ln in (result.stdout + result.stderr).splitlines() if ln.strip()][-8:]
                raise DeployError(f"evaluating {model.name} failed:\n  " + "\n  ".join(tail))
            cached = json.loads(out.read_text(encoding="utf-8"))
        _store_cache(cache_path, key, cached)
    return Evaluation(model.name, float(cached["accuracy"]), float(cached.get("macro_f1", 0.0)),
                      int(cached.get("n", 0)), cached.get("per_intent") or {}, cached.get("errors") or [])


def evaluate_pair(new: Path, live: Path, heldout: Path = HELDOUT, models: Path = MODELS,
                  say: Say = _say) -> tuple[Evaluation, Evaluation]:
    """Both evaluations, side by side (one Rasa process each, in parallel; cached ones are instant)."""
    say(f"Evaluating on {_rel(heldout)}: {new.name} and the live {live.name} (about 30 s unless cached) ...")
    if _sha256(new) == _sha256(live):  # the same model under another name
        result = evaluate(new, heldout, models)
        return result, Evaluation(live.name, result.accuracy, result.macro_f1, result.n, result.per_intent,
                                  result.errors)
    with ThreadPoolExecutor(max_workers=2) as pool:
        new_future = pool.submit(evaluate, new, heldout, models)
        live_future = pool.submit(evaluate, live, heldout, models)
        return new_future.result(), live_future.result()


def _rel(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT)) if path.is_relative_to(PROJECT_ROOT) else str(path)


def compare(new: Evaluation, live: Evaluation, say: Say = _say, examples: int = 10) -> None:
    """Overall accuracy of both, then the intents whose F1 changed and the sentences that changed side."""
    change = (new.accuracy - live.accuracy) * 100
    width = max(len(new.model), len(live.model))
    say(f"Held-out intent accuracy ({new.n} examples):")
    say(f"  live  {live.model:<{width}}  {live.accuracy:6.1%}  (macro-F1 {live.macro_f1:.3f})")
    say(f"  new   {new.model:<{width}}  {new.accuracy:6.1%}  (macro-F1 {new.macro_f1:.3f})  {change:+.1f} points")
    rows = []
    for intent in sorted(set(new.per_intent) | set(live.per_intent)):
        a, b = live.per_intent.get(intent, {}), new.per_intent.get(intent, {})
        fa, fb = float(a.get("f1", 0.0)), float(b.get("f1", 0.0))
        ra, rb = float(a.get("recall", 0.0)), float(b.get("recall", 0.0))
        if abs(fb - fa) >= 0.0005 or abs(rb - ra) >= 0.0005:
            rows.append((intent, int(b.get("support", a.get("support", 0))), ra, rb, fa, fb))
    if not rows:
        say("Per intent: no difference.")
    else:
        say("Per intent (only the intents that changed; recall = share of its examples recognised):")
        say(f"  {'intent':<24} {'n':>4}  {'recall live':>11} {'new':>6}  {'F1 live':>7} {'new':>6} {'change':>7}")
        for intent, n, ra, rb, fa, fb in sorted(rows, key=lambda r: r[5] - r[4]):
            say(f"  {intent:<24} {n:>4}  {ra:>11.2f} {rb:>6.2f}  {fa:>7.3f} {fb:>6.3f} {fb - fa:>+7.3f}")
    wrong_before = {(e["text"], e["intent"]): e for e in live.errors}
    wrong_now = {(e["text"], e["intent"]): e for e in new.errors}
    for title, keys, source in (("Now wrong (the live model got them right)", wrong_now.keys() - wrong_before.keys(),
                                 wrong_now),
                                ("Now right (the live model got them wrong)", wrong_before.keys() - wrong_now.keys(),
                                 wrong_before)):
        if not keys:
            continue
        say(f"{title}: {len(keys)}")
        for key in sorted(keys)[:examples]:
            err = source[key]
            text = err["text"] if len(err["text"]) <= 90 else err["text"][:87] + "..."
            say(f"  {text!r}: {err['intent']}, predicted {err['predicted']} ({err['confidence']:.2f})")
        if len(keys) > examples:
            say(f"  ... and {len(keys) - examples} more")


# ---------------------------------------------------------------------------------------------------------------
# Which models were live


def read_state(path: Path = STATE_FILE) -> dict[str, Any]:
    """``{"stack": [model file names, oldest first; the last is live], "log": [...]}``."""
    data = _load_cache(path)
    return {"stack": list(data.get("stack") or []), "log": list(data.get("log") or [])}


def write_state(state: dict[str, Any], path: Path = STATE_FILE) -> None:
    state["log"] = state["log"][-KEEP_LOG:]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(path)


def resolve_model(arg: str | None, models: Path = MODELS) -> Path:
    """A model given as a path or as a file name in ``models/``; by default the newest trained one."""
    if arg is None:
        model = current_model(models)
        if model is None:
            raise DeployError("no trained model: run `make train` (dvcbot train) first")
        return model
    for candidate in (Path(arg), models / arg, models / f"{arg}.tar.gz"):
        if candidate.is_file():
            return candidate
    raise DeployError(f"model {arg!r} not found (give a file in {_rel(models)}/ or a path)")


def _event(kind: str, model: str, previous: str, seconds: float, **extra: Any) -> dict[str, Any]:
    return {"at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "kind": kind, "model": model, "previous": previous,
            "load_seconds": round(seconds, 2), **extra}


def deploy(server: RasaServer | Sequence[RasaServer], model_arg: str | None = None, force: bool = False,
           models: Path = MODELS, state_path: Path = STATE_FILE, heldout: Path = HELDOUT, say: Say = _say) -> int:
    """Load a model into the running server(s) unless it scores lower than the live one on the held-out data."""
    fleet = _fleet(server)
    model = resolve_model(model_arg, models)
    before = live_models(fleet)
    older = [m for m in before.values() if m != model.name]
    if not older:
        say(f"{model.name} is already live; nothing to do.")
        return 0
    live = older[0]
    if len(set(older)) > 1:
        listing = ", ".join(f"{url}: {m}" for url, m in before.items())
        if not force:
            raise DeployError(f"the Rasa replicas serve different models ({listing}); `dvcbot deploy --force` "
                              f"brings them all to {model.name}")
        say(f"The Rasa replicas serve different models ({listing}).")
    extra: dict[str, Any] = {"forced": force}
    if force:
        say("--force: deploying without comparing with the live model.")
    else:
        live_file = models / live
        if not live_file.is_file():
            raise DeployError(f"the live model {live!r} is not in {_rel(models)}/, so the new one cannot be "
                              "compared with it; deploy with --force if you are sure")
        new_eval, live_eval = evaluate_pair(model, live_file, heldout, models, say)
        compare(new_eval, live_eval, say)
        extra.update(accuracy=new_eval.accuracy, live_accuracy=live_eval.accuracy)
        if new_eval.accuracy < live_eval.accuracy:
            say(f"Deploy refused: {model.name} gets {new_eval.accuracy:.1%} of the held-out examples right, the live "
                f"model {live_eval.accuracy:.1%}. Add examples for the intents above (or fix them), train and try "
                "again; `dvcbot deploy --force` deploys anyway.")
            return 1
    if len(fleet) == 1:
        say(f"Loading {model.name} into the Rasa server at {fleet[0].url} (the live model answers meanwhile) ...")
    else:
        say(f"Loading {model.name} into {len(fleet)} Rasa servers, one at a time (the others answer meanwhile) ...")
    seconds = switch_all(fleet, model, before, models, say)
    if len(fleet) > 1:
        extra["replicas"] = [s.url for s in fleet]
    state = read_state(state_path)
    if not state["stack"] or state["stack"][-1] != live:
        state["stack"].append(live)  # the model the server was started with, or one loaded by hand
    state["stack"].append(model.name)
    state["log"].append(_event("deploy", model.name, live, seconds, **extra))
    write_state(state, state_path)
    say(f"Deployed {model.name} in {seconds:.1f} s (before: {live}). `dvcbot rollback` brings that one back.")
    return 0


def rollback(server: RasaServer | Sequence[RasaServer], models: Path = MODELS, state_path: Path = STATE_FILE,
             say: Say = _say) -> int:
    """Load the model that was live before the last deploy (into every replica, one at a time)."""
    fleet = _fleet(server)
    state = read_state(state_path)
    before = live_models(fleet)
    live = before[fleet[0].url]
    if len(set(before.values())) > 1:
        say("Note: the Rasa replicas serve different models (" + ", ".join(f"{u}: {m}" for u, m in before.items())
            + ").")
    stack = state["stack"]
    if stack and stack[-1] != live:
        say(f"Note: the server runs {live}, not {stack[-1]} as recorded (it was restarted or changed by hand); "
            f"rolling back to {stack[-1]}.")
        stack.append(live)
    if len(stack) < 2:
        say("Nothing to roll back to: no earlier deployment is recorded.")
        return 1
    previous = stack[-2]
    model = models / previous
    if not model.is_file():
        raise DeployError(f"the previous model {previous!r} is no longer in {_rel(models)}/")
    say(f"Rolling back to {previous} (the live model answers meanwhile) ...")
    seconds = switch_all(fleet, model, before, models, say)
    rolled_back = stack.pop()
    state["log"].append(_event("rollback", previous, rolled_back, seconds))
    write_state(state, state_path)
    say(f"Rolled back to {previous} in {seconds:.1f} s (was: {rolled_back}).")
    return 0


def run_eval(server: RasaServer | Sequence[RasaServer], model_arg: str | None = None, models: Path = MODELS,
             heldout: Path = HELDOUT, say: Say = _say) -> int:
    """``dvcbot eval``: the newest model against the live one (of the first replica) on the held-out data."""
    first = _fleet(server)[0]
    model = resolve_model(model_arg, models)
    try:
        live = first.live_model()
    except DeployError as exc:
        say(f"Live model unknown: {exc}")
        say(f"Showing {model.name} alone.")
        live = ""
    if live and live != model.name and not (models / live).is_file():
        say(f"The live model {live} is not in {_rel(models)}/; showing {model.name} alone.")
        live = ""
    if not live or live == model.name:
        if live:
            say(f"{model.name} is the live model.")
        say(f"Evaluating {model.name} on {_rel(heldout)} (about 20 s unless cached) ...")
        result = evaluate(model, heldout, models)
        say(f"Held-out intent accuracy: {result.accuracy:.1%} of {result.n} (macro-F1 {result.macro_f1:.3f})")
        return 0
    new_eval, live_eval = evaluate_pair(model, models / live, heldout, models, say)
    compare(new_eval, live_eval, say)
    if new_eval.accuracy < live_eval.accuracy:
        say("The new model is worse than the live one: `dvcbot deploy` will refuse it.")
    return 0


def main(command: str, model: str | None = None, force: bool = False) -> int:
    """Entry point of the three subcommands; a ``DeployError`` becomes one line and exit code 1."""
    from dvcbot.settings import get_settings

    settings = get_settings()
    server = RasaServer.replicas(settings)
    # the models, the record of live models and the held-out data of DVCBOT_PROJECT_DIR / DVCBOT_MODELS_DIR
    models, state = settings.models_path, settings.project_dir / "var" / STATE_FILE.name
    heldout = settings.project_dir / HELDOUT.relative_to(PROJECT_ROOT)
    try:
        if command == "eval":
            return run_eval(server, model, models=models, heldout=heldout)
        if command == "deploy":
            return deploy(server, model, force, models=models, state_path=state, heldout=heldout)
        return rollback(server, models=models, state_path=state)
    except DeployError as exc:
        print(f"{command} failed: {exc}", file=sys.stderr, flush=True)
        return 1
