"""``dvcbot eval`` / ``deploy`` / ``rollback``: the gate, the record of live models, and a real swap under load."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy.orm import Session

from dvcbot import PROJECT_ROOT
from dvcbot.deploy import (
    EVALUATIONS,
    DeployError,
    RasaServer,
    _evaluation_key,
    compare,
    deploy,
    model_fingerprint,
    read_state,
    read_token,
    rollback,
    run_eval,
)
from dvcbot.settings import Settings
from dvcbot.supervisor import remove_token_file, replica_services, write_token_file
from dvcbot.training import current_model

# ---------------------------------------------------------------------------------------------------------------
# Without Rasa: a fake API (httpx.MockTransport) and seeded held-out scores


class FakeRasa:
    """``GET /status`` and ``PUT /model`` of a Rasa server started with ``--auth-token secret``."""

    def __init__(self, live: str, url: str = "http://rasa.test", journal: list[str] | None = None) -> None:
        self.live = live
        self.model_id = f"id-{live}"
        self.url = url
        self.loads: list[str] = []
        self.journal = journal if journal is not None else []  # shared by replicas: the order of events
        self.refuse: set[str] = set()  # model files this replica fails to load (500)
        self.wrong_id: set[str] = set()  # loads these, then reports another fingerprint (a mixed-up file)

    def handler(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("token") != "secret":
            return httpx.Response(401, json={"message": "User is not authenticated."})
        if request.method == "GET" and request.url.path == "/status":
            return httpx.Response(200, json={"model_file": self.live, "model_id": self.model_id})
        if request.method == "PUT" and request.url.path == "/model":
            path = Path(json.loads(request.content)["model_file"])
            self.journal.append(f"{self.url} load {path.name}")
            if not path.is_file() or path.name in self.refuse:
                return httpx.Response(500, json={"message": f"no model at {path}"})
            self.live = path.name
            self.model_id = "something-else" if path.name in self.wrong_id else (model_fingerprint(path) or "x")
            self.loads.append(path.name)
            self.journal.append(f"{self.url} live {path.name}")
            return httpx.Response(204)
        return httpx.Response(404)

    def server(self, token: str | None = "secret") -> RasaServer:
        client = httpx.Client(transport=httpx.MockTransport(self.handler))
        return RasaServer(self.url, token, client)


def model_archive(model_id: str) -> bytes:
    """A file shaped like a Rasa 3.6 model: a tar.gz with ``metadata.json`` holding the fingerprint."""
    data = json.dumps({"model_id": model_id, "assistant_id": "dvcbot"}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        info = tarfile.TarInfo("metadata.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def scores(accuracy: float, per_intent: dict[str, float], errors: list[tuple[str, str, str]]) -> dict[str, Any]:
    return {"accuracy": accuracy, "macro_f1": accuracy, "n": 10,
            "per_intent": {k: {"precision": v, "recall": v, "f1": v, "support": 5} for k, v in per_intent.items()},
            "errors": [{"text": t, "intent": i, "predicted": p, "confidence": 0.5} for t, i, p in errors]}


@pytest.fixture
def models(tmp_path: Path) -> Path:
    """Three model files with seeded held-out scores: old 0.80, good 0.90, bad 0.70."""
    folder = tmp_path / "models"
    folder.mkdir()
    heldout = tmp_path / "heldout.yml"
    heldout.write_text("nlu: []\n")
    seeded = {
        "old.tar.gz": scores(0.8, {"greet": 1.0, "procedure_fee": 0.6}, [("phí?", "procedure_fee", "greet")]),
        "good.tar.gz": scores(0.9, {"greet": 1.0, "procedure_fee": 0.8}, [("chào", "greet", "thank")]),
        "bad.tar.gz": scores(0.7, {"greet": 0.5, "procedure_fee": 0.6}, [("phí?", "procedure_fee", "greet")]),
    }
    cache = {}
    for name, value in seeded.items():
        (folder / name).write_bytes(model_archive(f"id-{name}"))
        cache[_evaluation_key(folder / name, heldout)] = value
    (folder / EVALUATIONS).write_text(json.dumps(cache))
    return folder


def run_deploy(fake: FakeRasa, models: Path, model: str | None, force: bool = False) -> tuple[int, list[str]]:
    lines: list[str] = []
    code = deploy(fake.server(), model, force, models=models, state_path=models.parent / "deployments.json",
                  heldout=models.parent / "heldout.yml", say=lines.append)
    return code, lines


def test_deploy_refuses_a_worse_model_unless_forced(models: Path) -> None:
    fake = FakeRasa("old.tar.gz")
    code, lines = run_deploy(fake, models, "bad")
    assert code == 1 and fake.loads == [] and fake.live == "old.tar.gz"
    assert lines[-1].startswith("Deploy refused: bad.tar.gz gets 70.0% of the held-out examples right, the live "
                                "model 80.0%.")
    assert any(line.split()[:1] == ["greet"] and line.endswith("-0.500") for line in lines)  # per intent

    code, lines = run_deploy(fake, models, "bad", force=True)
    assert code == 0 and fake.live == "bad.tar.gz"
    state = read_state(models.parent / "deployments.json")
    assert state["stack"] == ["old.tar.gz", "bad.tar.gz"]
    assert state["log"][-1]["forced"] is True


def test_deploy_then_rollback_twice(models: Path) -> None:
    fake = FakeRasa("old.tar.gz")
    state_path = models.parent / "deployments.json"
    assert run_deploy(fake, models, "good")[0] == 0
    assert run_deploy(fake, models, "good")[1] == ["good.tar.gz is already live; nothing to do."]
    assert run_deploy(fake, models, "bad", force=True)[0] == 0
    assert read_state(state_path)["stack"] == ["old.tar.gz", "good.tar.gz", "bad.tar.gz"]

    lines: list[str] = []
    assert rollback(fake.server(), models=models, state_path=state_path, say=lines.append) == 0
    assert fake.live == "good.tar.gz" and lines[-1].startswith("Rolled back to good.tar.gz in ")
    assert rollback(fake.server(), models=models, state_path=state_path, say=lines.append) == 0
    assert fake.live == "old.tar.gz"
    assert rollback(fake.server(), models=models, state_path=state_path, say=lines.append) == 1
    assert lines[-1] == "Nothing to roll back to: no earlier deployment is recorded."
    assert [e["kind"] for e in read_state(state_path)["log"]] == ["deploy", "deploy", "rollback", "rollback"]


def test_rollback_after_the_server_was_restarted_with_another_model(models: Path) -> None:
    fake = FakeRasa("old.tar.gz")
    state_path = models.parent / "deployments.json"
    assert run_deploy(fake, models, "good")[0] == 0
    fake.live = "bad.tar.gz"  # `make run` restarted with the newest model
    lines: list[str] = []
    assert rollback(fake.server(), models=models, state_path=state_path, say=lines.append) == 0
    assert fake.live == "good.tar.gz"
    assert lines[0].startswith("Note: the server runs bad.tar.gz, not good.tar.gz as recorded")


def test_eval_prints_the_differences_per_intent(models: Path) -> None:
    lines: list[str] = []
    code = run_eval(FakeRasa("old.tar.gz").server(), "good", models=models, heldout=models.parent / "heldout.yml",
                    say=lines.append)
    assert code == 0
    text = "\n".join(lines)
    assert "live  old.tar.gz    80.0%" in text and "new   good.tar.gz   90.0%" in text and "+10.0 points" in text
    assert "  procedure_fee " in text and "+0.200" in text and "\n  greet " not in text  # only what changed
    assert "Now wrong (the live model got them right): 1\n  'chào': greet, predicted thank (0.50)" in text
    assert "Now right (the live model got them wrong): 1\n  'phí?': procedure_fee, predicted greet (0.50)" in text


def test_eval_without_a_server_shows_the_new_model_alone(models: Path) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    server = RasaServer("http://rasa.test", "secret", httpx.Client(transport=httpx.MockTransport(down)))
    lines: list[str] = []
    assert run_eval(server, "good", models=models, heldout=models.parent / "heldout.yml", say=lines.append) == 0
    assert "is not reachable" in lines[0] and lines[-1] == "Held-out intent accuracy: 90.0% of 10 (macro-F1 0.900)"


def test_wrong_token_and_unknown_model(models: Path) -> None:
    fake = FakeRasa("old.tar.gz")
    with pytest.raises(DeployError, match="refused the token"):
        deploy(fake.server(token="nope"), "good", models=models, state_path=models.parent / "d.json")
    with pytest.raises(DeployError, match="model 'nothing' not found"):
        deploy(fake.server(), "nothing", models=models, state_path=models.parent / "d.json")


def test_the_live_model_must_be_known_to_compare(models: Path) -> None:
    fake = FakeRasa("from-elsewhere.tar.gz")
    with pytest.raises(DeployError, match="cannot be compared"):
        run_deploy(fake, models, "good")
    assert run_deploy(fake, models, "good", force=True)[0] == 0


def test_token_file(tmp_path: Path) -> None:
    path = tmp_path / "var" / "rasa-token"
    path.parent.mkdir()
    path.write_text("stale")
    path.chmod(0o644)
    write_token_file("abc", path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "abc\n"
    assert read_token(Settings(rasa_token=None), path) == "abc"
    assert read_token(Settings(rasa_token="from-env"), path) == "from-env"
    remove_token_file("another run's", path)
    assert path.exists()
    remove_token_file("abc", path)
    assert not path.exists() and read_token(Settings(rasa_token=None), path) is None


# ---------------------------------------------------------------------------------------------------------------
# Several Rasa replicas (make run-prod): one at a time, checked, and put back together when one fails


def replicas(live: str = "old.tar.gz", n: int = 2) -> tuple[list[FakeRasa], list[str]]:
    journal: list[str] = []
    return [FakeRasa(live, f"http://rasa-{i}.test", journal) for i in range(1, n + 1)], journal


def test_model_fingerprint(models: Path) -> None:
    assert model_fingerprint(models / "good.tar.gz") == "id-good.tar.gz"
    (models / "not-a-model.tar.gz").write_bytes(b"text")
    assert model_fingerprint(models / "not-a-model.tar.gz") is None


def test_deploy_and_rollback_switch_every_replica_one_at_a_time(models: Path) -> None:
    fakes, journal = replicas()
    state_path = models.parent / "deployments.json"
    lines: list[str] = []
    servers = [f.server() for f in fakes]
    assert deploy(servers, "good", models=models, state_path=state_path, heldout=models.parent / "heldout.yml",
                  say=lines.append) == 0
    # the second replica starts loading only once the first serves the new model
    assert journal == ["http://rasa-1.test load good.tar.gz", "http://rasa-1.test live good.tar.gz",
                       "http://rasa-2.test load good.tar.gz", "http://rasa-2.test live good.tar.gz"]
    assert [f.live for f in fakes] == ["good.tar.gz", "good.tar.gz"]
    assert [f.model_id for f in fakes] == ["id-good.tar.gz"] * 2
    assert "into 2 Rasa servers, one at a time" in "\n".join(lines)
    assert lines[-1].startswith("Deployed good.tar.gz in ")
    state = read_state(state_path)
    assert state["stack"] == ["old.tar.gz", "good.tar.gz"]
    assert state["log"][-1]["replicas"] == ["http://rasa-1.test", "http://rasa-2.test"]

    journal.clear()
    assert rollback(servers, models=models, state_path=state_path, say=lines.append) == 0
    assert [f.live for f in fakes] == ["old.tar.gz", "old.tar.gz"]
    assert journal[0] == "http://rasa-1.test load old.tar.gz" and journal[-1] == "http://rasa-2.test live old.tar.gz"
    assert read_state(state_path)["stack"] == ["old.tar.gz"]


def test_a_replica_that_fails_part_way_puts_the_switched_ones_back(models: Path) -> None:
    fakes, journal = replicas(n=3)
    fakes[1].refuse.add("good.tar.gz")  # e.g. the file is not on that machine
    state_path = models.parent / "deployments.json"
    lines: list[str] = []
    with pytest.raises(DeployError) as failed:
        deploy([f.server() for f in fakes], "good", models=models, state_path=state_path,
               heldout=models.parent / "heldout.yml", say=lines.append)
    message = str(failed.value)
    assert "loading good.tar.gz failed: HTTP 500" in message and "(replica 2 of 3)" in message
    assert "rolled back the replicas already switched: http://rasa-1.test back on old.tar.gz" in message
    assert [f.live for f in fakes] == ["old.tar.gz"] * 3
    assert fakes[0].model_id == "id-old.tar.gz"  # the fingerprint of the model put back was checked too
    assert fakes[2].loads == []  # never touched
    assert journal[-2:] == ["http://rasa-1.test load old.tar.gz", "http://rasa-1.test live old.tar.gz"]
    assert not state_path.exists()  # nothing was deployed


def test_a_replica_reporting_another_fingerprint_counts_as_a_failure(models: Path) -> None:
    fakes, _ = replicas()
    fakes[1].wrong_id.add("good.tar.gz")
    with pytest.raises(DeployError, match=re.escape("fingerprint 'something-else', not 'id-good.tar.gz'")) as failed:
        deploy([f.server() for f in fakes], "good", force=True, models=models,
               state_path=models.parent / "d.json", say=lambda _: None)
    assert "http://rasa-2.test back on old.tar.gz" in str(failed.value)  # it had loaded the file: back too
    assert "http://rasa-1.test back on old.tar.gz" in str(failed.value)
    assert [f.live for f in fakes] == ["old.tar.gz", "old.tar.gz"]


def test_a_rollback_that_fails_part_way_keeps_the_replicas_together(models: Path) -> None:
    fakes, _ = replicas()
    state_path = models.parent / "deployments.json"
    servers = [f.server() for f in fakes]
    assert deploy(servers, "good", force=True, models=models, state_path=state_path, say=lambda _: None) == 0
    fakes[1].refuse.add("old.tar.gz")
    with pytest.raises(DeployError, match=re.escape("http://rasa-1.test back on good.tar.gz")):
        rollback(servers, models=models, state_path=state_path, say=lambda _: None)
    assert [f.live for f in fakes] == ["good.tar.gz", "good.tar.gz"]
    assert read_state(state_path)["stack"] == ["old.tar.gz", "good.tar.gz"]  # still deployed, still reversible


def test_replicas_serving_different_models(models: Path) -> None:
    fakes, _ = replicas()
    fakes[1].live = "bad.tar.gz"  # e.g. a replica restarted with another model
    servers = [f.server() for f in fakes]
    state_path = models.parent / "d.json"
    with pytest.raises(DeployError, match=r"serve different models .*--force"):
        deploy(servers, "good", models=models, state_path=state_path, say=lambda _: None)
    assert [f.loads for f in fakes] == [[], []]
    assert deploy(servers, "good", force=True, models=models, state_path=state_path, say=lambda _: None) == 0
    assert [f.live for f in fakes] == ["good.tar.gz", "good.tar.gz"]
    fakes[0].live = "good.tar.gz"
    lines: list[str] = []
    assert deploy(servers, "good", models=models, state_path=state_path, say=lines.append) == 0
    assert lines == ["good.tar.gz is already live; nothing to do."]


def test_a_replica_that_is_down_stops_the_deploy_before_anything_changes(models: Path) -> None:
    fakes, journal = replicas()

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    servers = [fakes[0].server(), RasaServer("http://rasa-2.test", "secret",
                                             httpx.Client(transport=httpx.MockTransport(down)))]
    with pytest.raises(DeployError, match=re.escape("rasa-2.test is not reachable")):
        deploy(servers, "good", force=True, models=models, state_path=models.parent / "d.json")
    assert journal == []


def test_which_replicas_a_deploy_goes_to(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    urls_file = tmp_path / "rasa-urls"
    monkeypatch.delenv("DVCBOT_RASA_URLS", raising=False)
    single = Settings(rasa_token="t", rasa_port=5005)
    assert [s.url for s in RasaServer.replicas(single, urls_file=urls_file)] == ["http://127.0.0.1:5005"]
    urls_file.write_text("http://127.0.0.1:5006\nhttp://127.0.0.1:5007\n")  # a running `make run-prod`
    assert [s.url for s in RasaServer.replicas(single, urls_file=urls_file)] == ["http://127.0.0.1:5006",
                                                                                "http://127.0.0.1:5007"]
    monkeypatch.setenv("DVCBOT_RASA_URLS", "http://10.0.0.5:5005/, http://10.0.0.6:5005")
    servers = RasaServer.replicas(Settings(rasa_token="t"), urls_file=urls_file)  # the setting wins
    assert [(s.url, s.token) for s in servers] == [("http://10.0.0.5:5005", "t"), ("http://10.0.0.6:5005", "t")]


def test_run_prod_tells_every_replica_the_rasa_urls(tmp_path: Path) -> None:
    settings = Settings(redis_url="redis://127.0.0.1:6379/0", rasa_port=5005)
    svcs = replica_services(settings, Path("m.tar.gz"), "tok", 3, workdir=tmp_path)
    urls = {s.env.get("DVCBOT_RASA_URLS") for s in svcs if s.name[-2:] in ("-1", "-2", "-3")}
    assert urls == {"http://127.0.0.1:5006,http://127.0.0.1:5007,http://127.0.0.1:5008"}
    assert Settings(rasa_urls=urls.pop()).rasa_replica_urls == ["http://127.0.0.1:5006", "http://127.0.0.1:5007",
                                                                "http://127.0.0.1:5008"]


# ---------------------------------------------------------------------------------------------------------------
# With the real Rasa server: the swap happens while messages keep coming


@dataclass
class Sent:
    sender: str
    text: str
    started: float
    ended: float
    status: int
    replies: list[dict[str, Any]]
    error: str = ""


class Stream:
    """Threads that keep sending messages to Rasa's REST webhook, one conversation each."""

    TEXTS: ClassVar[list[str]] = ["xin chào", "làm giấy khai sinh cần giấy tờ gì", "cảm ơn", "thủ tục cấp lại căn cước",
             "bưu điện có nộp hồ sơ hộ không"]

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.stop = threading.Event()
        self.sent: list[Sent] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(f"stream-{i}",), daemon=True)
                        for i in range(threads)]

    def _run(self, sender: str) -> None:
        with httpx.Client(timeout=60) as client:
            i = 0
            while not self.stop.is_set():
                text = self.TEXTS[i % len(self.TEXTS)]
                i += 1
                started = time.monotonic()
                try:
                    resp = client.post(f"{self.url}/webhooks/rest/webhook", json={"sender": sender, "message": text})
                    replies = resp.json() if resp.status_code == 200 else []
                    sent = Sent(sender, text, started, time.monotonic(), resp.status_code, replies)
                except (httpx.HTTPError, ValueError) as exc:
                    sent = Sent(sender, text, started, time.monotonic(), 0, [], repr(exc))
                with self.lock:
                    self.sent.append(sent)
                time.sleep(0.05)

    def __enter__(self) -> Stream:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


class TimedServer(RasaServer):
    """Remembers when each ``PUT /model`` ran."""

    windows: list[tuple[float, float]]

    def load(self, model: Path) -> float:
        started = time.monotonic()
        seconds = super().load(model)
        self.windows.append((started, time.monotonic()))
        return seconds


@pytest.fixture(scope="module")
def model_copies(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The newest model as ``live-*`` and again, the same file, as ``new-*``: enough to see a swap."""
    model = current_model()
    if model is None:
        pytest.fail("no trained Rasa model: run `make model` first")
    models = tmp_path_factory.mktemp("models")
    shutil.copy(model, models / f"live-{model.name}")
    shutil.copy(model, models / f"new-{model.name}")
    return models


def wait_for_rasa(urls: list[str], sup: Any, log: str, within: float) -> None:
    """Until every Rasa server in ``urls`` answers ``/status`` (each process of ``sup`` must stay alive)."""
    deadline = time.monotonic() + within
    for url in urls:
        while True:
            assert all(s.proc and s.proc.poll() is None for s in sup.svcs), f"a service died; see {log}"
            try:
                if httpx.get(f"{url}/status", params={"token": "deploy-token"}, timeout=3).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"Rasa did not start; see {log}"
            time.sleep(1)


@pytest.fixture(scope="module")
def rasa_stack(model_copies: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real action server and Rasa server serving ``live-*``, with the project's credentials and endpoints
    (trackers in a SQL store of the test's own); yields Rasa's URL and the models."""
    from actions.catalog.directory import load_directory, read_directory
    from actions.catalog.loader import load_catalog
    from actions.catalog.schema import read_catalog
    from dvcbot.db import create_schema, make_engine
    from dvcbot.supervisor import Supervisor, services
    from tests.servers import free_port

    models = model_copies
    tmp = tmp_path_factory.mktemp("deploy")
    db_url = f"sqlite:///{tmp / 'dvcbot.db'}"
    engine = make_engine(db_url)
    create_schema(engine)
    catalog, _ = read_catalog(PROJECT_ROOT / "data" / "catalog", PROJECT_ROOT)
    offices, _ = read_directory(PROJECT_ROOT / "data" / "post_offices.yml", PROJECT_ROOT)
    with Session(engine) as session:
        load_catalog(session, catalog)
        load_directory(session, offices)
    engine.dispose()
    settings = Settings(database_url=db_url, rasa_port=free_port(), actions_port=free_port(),
                        rasa_token="deploy-token")
    live = next(models.glob("live-*.tar.gz"))
    svcs = [s for s in services(settings, live, "deploy-token") if s.name in ("actions", "rasa")]
    log = (tmp / "stack.log").open("w", encoding="utf-8")
    sup = Supervisor(svcs, out=log)
    sup.start()
    url = settings.rasa_url
    try:
        wait_for_rasa([url], sup, log.name, 150)
        yield url, models
    finally:
        sup.stop()
        log.close()


@pytest.fixture
def two_rasa_replicas(model_copies: Path, redis_url: str, tmp_path: Path) -> Iterator[tuple[list[str], Any]]:
    """Two real Rasa servers as `make run-prod` starts them (one endpoints.yml, Redis lock store, one SQL tracker
    store) and one action server; yields their URLs and the supervisor."""
    from dvcbot.db import create_schema, make_engine
    from dvcbot.supervisor import Supervisor
    from tests.servers import free_port

    db_url = f"sqlite:///{tmp_path / 'dvcbot.db'}"
    engine = make_engine(db_url)
    create_schema(engine)
    engine.dispose()
    settings = Settings(database_url=db_url, actions_port=free_port(), rasa_token="deploy-token", redis_url=redis_url)
    live = next(model_copies.glob("live-*.tar.gz"))
    ports = {"actions": [settings.actions_port], "rasa": [free_port(), free_port()], "gateway": [free_port()] * 2}
    svcs = [s for s in replica_services(settings, live, "deploy-token", 2, ports=ports, workdir=tmp_path)
            if s.name in ("actions-1", "rasa-1", "rasa-2")]
    assert {s.env["DVCBOT_RASA_LOCK_STORE"] for s in svcs if s.name.startswith("rasa")} == {"redis"}
    urls = svcs[1].env["DVCBOT_RASA_URLS"].split(",")
    log = (tmp_path / "stack.log").open("w", encoding="utf-8")
    sup = Supervisor(svcs, out=log)
    sup.start()
    try:
        wait_for_rasa(urls, sup, log.name, 240)
        yield urls, sup
    finally:
        sup.stop()
        log.close()


@pytest.mark.e2e
@pytest.mark.redis
def test_deploy_and_rollback_across_two_real_rasa_replicas(two_rasa_replicas: tuple[list[str], Any],
                                                           model_copies: Path, tmp_path: Path) -> None:
    urls, sup = two_rasa_replicas
    models = model_copies
    live, new = sorted(p.name for p in models.glob("*.tar.gz"))
    fingerprint = model_fingerprint(models / new)
    assert fingerprint  # a real model carries one
    state_path = tmp_path / "deployments.json"
    fleet = [RasaServer(url, "deploy-token") for url in urls]
    lines: list[str] = []

    assert deploy(fleet, new, force=True, models=models, state_path=state_path, say=lines.append) == 0, lines
    assert [(s.status()["model_file"], s.status()["model_id"]) for s in fleet] == [(new, fingerprint)] * 2
    for url in urls:  # both answer with the new model, on one shared conversation
        reply = httpx.post(f"{url}/webhooks/rest/webhook", timeout=60, json={"sender": "c", "message": "xin chào"})
        assert reply.status_code == 200 and reply.json(), reply.text
    assert rollback(fleet, models=models, state_path=state_path, say=lines.append) == 0, lines
    assert [s.live_model() for s in fleet] == [live, live]

    class DiesBeforeLoading(RasaServer):
        def load(self, model: Path) -> float:
            rasa_2 = next(s for s in sup.svcs if s.name == "rasa-2")
            assert rasa_2.proc is not None
            os.killpg(rasa_2.proc.pid, signal.SIGKILL)  # it dies while the first already serves the new model
            rasa_2.proc.wait()
            return super().load(model)

    failing = [fleet[0], DiesBeforeLoading(urls[1], "deploy-token")]
    with pytest.raises(DeployError) as failed:
        deploy(failing, new, force=True, models=models, state_path=state_path, say=lines.append)
    assert "(replica 2 of 2)" in str(failed.value)
    assert f"{urls[0]} back on {live}" in str(failed.value)
    assert fleet[0].live_model() == live  # the switched replica was really put back
    assert read_state(state_path)["stack"] == [live]


def tracker_events(url: str, sender: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{url}/conversations/{sender}/tracker", params={"token": "deploy-token"}, timeout=30)
    resp.raise_for_status()
    events: list[dict[str, Any]] = resp.json()["events"]
    return events


@pytest.mark.e2e
def test_deploy_and_rollback_while_messages_keep_coming(rasa_stack: tuple[str, Path],
                                                        tmp_path: Path) -> None:
    url, models = rasa_stack
    live, new = sorted(p.name for p in models.glob("*.tar.gz"))
    assert live.startswith("live-") and new.startswith("new-")
    server = TimedServer(url, "deploy-token")
    server.windows = []
    state_path = tmp_path / "deployments.json"
    assert server.live_model() == live

    # a conversation in progress: the bot knows which procedure it is about
    first = httpx.post(f"{url}/webhooks/rest/webhook", timeout=60,
                       json={"sender": "citizen", "message": "làm giấy khai sinh cần giấy tờ gì"}).json()
    assert "khai sinh" in first[0]["text"]
    events_before = len(tracker_events(url, "citizen"))

    lines: list[str] = []
    with Stream(url) as stream:
        time.sleep(2)
        # not forced: both models are evaluated on the held-out data (one run: the files are identical)
        assert deploy(server, new, models=models, state_path=state_path, say=lines.append) == 0, lines
        assert server.live_model() == new
        time.sleep(2)
        assert rollback(server, models=models, state_path=state_path, say=lines.append) == 0, lines
        time.sleep(2)
    assert server.live_model() == live
    assert read_state(state_path)["stack"] == [live]

    # every message got an answer, none an error, none too late for the gateway
    sent = stream.sent
    bad = [s for s in sent if s.status != 200 or not s.replies or s.error]
    assert bad == [], bad[:5]
    slowest = max(s.ended - s.started for s in sent)
    assert slowest < Settings().rasa_timeout
    swap_seconds = [end - start for start, end in server.windows]
    during = [s for s in sent for start, end in server.windows if s.started < end and s.ended > start]
    print(f"\ndeploy figures: {len(sent)} messages answered, 0 errors; PUT /model took "
          f"{', '.join(f'{x:.2f} s' for x in swap_seconds)}; {len(during)} messages overlapped a swap; "
          f"slowest answer {slowest:.2f} s")
    assert lines[-1].startswith(f"Rolled back to {live} in ")

    # the conversation goes on after the two swaps
    after = httpx.post(f"{url}/webhooks/rest/webhook", timeout=60,
                       json={"sender": "citizen", "message": "thế lệ phí bao nhiêu"}).json()
    assert after, "no answer after the swaps"
    assert len(tracker_events(url, "citizen")) > events_before, "the conversation's tracker was reset by the swap"
    assert "khai sinh" in " ".join(str(r.get("text")) for r in after)  # it still knows the procedure


def test_compare_with_no_change() -> None:
    from dvcbot.deploy import Evaluation

    same = Evaluation("a.tar.gz", 0.9, 0.9, 10, {"greet": {"f1": 1.0, "recall": 1.0, "support": 3}}, [])
    lines: list[str] = []
    compare(same, same, lines.append)
    assert lines[-1] == "Per intent: no difference."
