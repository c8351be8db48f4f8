"""The editor's whole loop against the real stack, on a temporary copy of data/ and a temporary models folder:
a field changed in the console is answered at once (no training, no restart); a NEW procedure added in the console
plus ten examples in a YAML file → ``dvcbot content check``, ``train``, ``eval``, ``deploy`` → the web chat answers
the new question (nothing restarted) → ``dvcbot rollback`` → the old behaviour is back.

One training (about a minute on 2 cores); the repository's data/, models/ and var/ are never written.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.orm import Session

from actions.catalog.directory import load_directory, read_directory
from actions.catalog.loader import load_catalog
from actions.catalog.models import Procedure
from actions.catalog.schema import read_catalog
from dvcbot import PROJECT_ROOT
from dvcbot.db import create_schema, make_engine
from dvcbot.settings import Settings
from dvcbot.supervisor import Supervisor, services
from dvcbot.training import current_model
from tests.e2e.conftest import wait_healthy
from tests.servers import free_port

pytestmark = pytest.mark.e2e
PASSWORD = "bien-tap-2025"
TOKEN = "editor-flow-token"
NEW_ID = "dang_ky_giam_ho"
# how people ask about it: none of these words is in any procedure's name, so only the new model finds it
QUESTION = "muốn trông nom cháu mồ côi thì cần giấy tờ gì"
EXAMPLES = """\
version: "3.1"
nlu:
  - intent: procedure_documents
    examples: |
      - [trông nom cháu mồ côi]{"entity": "procedure", "value": "dang_ky_giam_ho"} cần những giấy tờ gì
      - hồ sơ [giám hộ]{"entity": "procedure", "value": "dang_ky_giam_ho"} cho cháu gồm những gì
      - [dang ky giam ho]{"entity": "procedure", "value": "dang_ky_giam_ho"} can giay to gi
      - làm [giám hộ cho em]{"entity": "procedure", "value": "dang_ky_giam_ho"} thì phải mang theo gì ạ
      - bố mẹ cháu mất, tôi muốn [nhận giám hộ]{"entity": "procedure", "value": "dang_ky_giam_ho"} chuẩn bị giấy gì
  - intent: procedure_steps
    examples: |
      - thủ tục [đăng ký giám hộ]{"entity": "procedure", "value": "dang_ky_giam_ho"} làm như thế nào
      - các bước [nhận giám hộ]{"entity": "procedure", "value": "dang_ky_giam_ho"} cho người già neo đơn
      - [trong nom chau mo coi]{"entity": "procedure", "value": "dang_ky_giam_ho"} thi lam the nao
  - intent: procedure_place
    examples: |
      - [đăng ký giám hộ]{"entity": "procedure", "value": "dang_ky_giam_ho"} nộp ở đâu
      - muốn [trông nom cháu mồ côi]{"entity": "procedure", "value": "dang_ky_giam_ho"} thì lên xã hay lên huyện
"""


@dataclass
class EditorStack:
    url: str
    rasa_url: str
    project: Path
    env: dict[str, str]  # what the editor's `dvcbot` commands run with
    database_url: str
    supervisor: Supervisor

    def pids(self) -> dict[str, int | None]:
        """The running processes; ``None`` for one that exited."""
        return {s.name: s.proc.pid if s.proc and s.proc.poll() is None else None for s in self.supervisor.svcs}


@pytest.fixture(scope="module")
def editor_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EditorStack]:
    """The real stack serving the current model from a temporary models folder, its gateway's catalog being a
    temporary copy of data/catalog (the console writes there)."""
    model = current_model(PROJECT_ROOT / "models")
    if model is None:
        pytest.fail("no trained Rasa model: run `make model` before the end-to-end tests")
    project = tmp_path_factory.mktemp("editor") / "project"
    project.mkdir()
    shutil.copytree(PROJECT_ROOT / "data", project / "data")
    shutil.copytree(PROJECT_ROOT / "domain", project / "domain")
    shutil.copy(PROJECT_ROOT / "config.yml", project / "config.yml")
    (project / "nlu").symlink_to(PROJECT_ROOT / "nlu")  # the custom components Rasa imports from its folder
    (project / "models").mkdir()
    live = project / "models" / model.name
    shutil.copy(model, live)
    data = project / "data"

    db_url = f"sqlite:///{project.parent / 'dvcbot.db'}"
    engine = make_engine(db_url)
    create_schema(engine)
    catalog, errors = read_catalog(data / "catalog", project)
    offices, office_errors = read_directory(data / "post_offices.yml", project)
    assert not errors and not office_errors
    with Session(engine) as session:
        load_catalog(session, catalog)
        load_directory(session, offices)
    engine.dispose()
    settings = Settings(database_url=db_url, gateway_port=free_port(), rasa_port=free_port(),
                        actions_port=free_port(), rasa_token=TOKEN)
    paths = {"DVCBOT_CATALOG_DIR": str(data / "catalog"), "DVCBOT_POST_OFFICES_FILE": str(data / "post_offices.yml"),
             "DVCBOT_CONTENT_DIR": str(data / "content"), "DVCBOT_PROJECT_DIR": str(project),
             "DVCBOT_EDITOR_DATA_DIR": str(data)}
    with pytest.MonkeyPatch.context() as env_now:  # services() hands its environment to the processes
        for key, value in paths.items():
            env_now.setenv(key, value)
        svcs = services(settings, live, TOKEN)
    log_path = project.parent / "stack.log"
    log = log_path.open("w", encoding="utf-8")
    print(f"editor-flow stack log: {log_path}")
    sup = Supervisor(svcs, out=log)
    sup.start()
    url = f"http://127.0.0.1:{settings.gateway_port}"
    env = {**os.environ, **paths, "DVCBOT_DATABASE_URL": db_url, "DVCBOT_RASA_PORT": str(settings.rasa_port),
           "DVCBOT_RASA_HOST": settings.rasa_host, "DVCBOT_RASA_URLS": settings.rasa_url,
           "DVCBOT_RASA_TOKEN": TOKEN}
    try:
        wait_healthy(url, sup, 300)
        yield EditorStack(url, settings.rasa_url, project, env, db_url, sup)
    finally:
        sup.stop()
        log.close()


def dvcbot(stack: EditorStack, *args: str, stdin: str | None = None, timeout: float = 900) -> str:
    """A ``dvcbot`` command as the editor runs it; returns its output (it must succeed)."""
    result = subprocess.run([sys.executable, "-m", "dvcbot.cli", *args], input=stdin, capture_output=True, text=True,
                            cwd=PROJECT_ROOT, env=stack.env, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"dvcbot {' '.join(args)} failed:\n{output[-3000:]}"
    return output


def ask(url: str, text: str) -> str:
    """A new web chat conversation asks ``text``; the bot's replies as one text."""
    with httpx.Client(base_url=url, timeout=60) as client:
        token = client.post("/api/webchat/sessions").json()["session"]
        resp = client.post("/api/webchat/messages", json={"text": text}, headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.text
        return "\n".join(str(m["text"]) for m in resp.json()["messages"])


def live_model(stack: EditorStack) -> str:
    status = httpx.get(f"{stack.rasa_url}/status", params={"token": TOKEN}, timeout=30).json()
    return str(status["model_file"])


def console(stack: EditorStack) -> httpx.Client:
    client = httpx.Client(base_url=stack.url, timeout=60)
    page = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    resp = client.post("/console/login", data={"username": "bt-e2e", "password": PASSWORD, "csrf": csrf.group(1),
                                                "next": "/console/catalog"}, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    return client


def form_of(html: str) -> dict[str, list[str]]:
    from tests.bot.test_console_catalog import body, read_form

    return body(read_form(html))


def test_an_editor_adds_a_procedure_and_deploys_it_without_a_restart(editor_stack: EditorStack) -> None:
    stack = editor_stack
    repo_models = sorted(p.name for p in (PROJECT_ROOT / "models").iterdir())
    repo_data = {p: p.stat().st_mtime_ns for p in (PROJECT_ROOT / "data").rglob("*") if p.is_file()}
    pids = stack.pids()
    assert all(pids.values())
    started_model = live_model(stack)
    dvcbot(stack, "staff", "add", "bt-e2e", "--name", "Biên tập", "--role", "editor", "--password-stdin",
           stdin=PASSWORD + "\n")
    client = console(stack)
    try:
        # 1. a field change is answered at once, without training
        before = ask(stack.url, "đăng ký khai sinh mất bao lâu")
        assert "Trong ngày làm việc (thử nghiệm)" not in before
        form = form_of(client.get("/console/catalog/khai_sinh").text)
        form["processing_time"] = ["Trong ngày làm việc (thử nghiệm)"]
        saved = client.post("/console/catalog/khai_sinh", data=form, follow_redirects=False)
        assert saved.headers["location"].endswith("saved=fields"), saved.text
        assert "Trong ngày làm việc (thử nghiệm)" in ask(stack.url, "đăng ký khai sinh mất bao lâu")

        # 2. the old model does not know how people ask about guardianship
        old_answer = ask(stack.url, QUESTION)
        assert "giám hộ" not in old_answer.lower()

        # 3. the new procedure, through the console form
        form = form_of(client.get("/console/catalog/new").text)
        form.update(file=["ho_tich.yml"], id=[NEW_ID], name=["Đăng ký giám hộ"],
                    aliases=["đăng ký giám hộ\nlàm thủ tục giám hộ\ncử người giám hộ"],
                    authority_level=["commune"], authority_name=["UBND cấp xã nơi cư trú của người được giám hộ"],
                    steps=["Chuẩn bị tờ khai và văn bản cử người giám hộ.\nNộp hồ sơ tại UBND cấp xã.\n"
                           "Nhận trích lục đăng ký giám hộ."],
                    sources=["https://dichvucong.gov.vn/p/home/dvc-tthc-thu-tuc-hanh-chinh.html"],
                    verified_on=["2026-11-27"])
        form["doc_name"][0] = "Tờ khai đăng ký giám hộ"
        form["doc_kind"][0] = "original"
        form["doc_name"][1] = "Văn bản cử người giám hộ"
        created = client.post("/console/catalog/new", data=form, follow_redirects=False)
        assert created.status_code == 303, created.text
        page = client.get(created.headers["location"]).text
        assert "chưa nhận ra" in page and "dvcbot train" in page
    finally:
        client.close()
    engine = make_engine(stack.database_url)
    with Session(engine) as session:
        assert session.get(Procedure, NEW_ID) is not None  # loaded into the database
    engine.dispose()
    assert "- id: dang_ky_giam_ho" in (stack.project / "data" / "catalog" / "ho_tich.yml").read_text(encoding="utf-8")

    # 4. ten examples in a YAML file under data/nlu, then the editor's commands
    (stack.project / "data" / "nlu" / "giam_ho.yml").write_text(EXAMPLES, encoding="utf-8")
    assert "Content OK" in dvcbot(stack, "content", "check")
    trained = dvcbot(stack, "train")
    assert "Trained dvcbot-" in trained
    new_model = current_model(stack.project / "models")
    assert new_model is not None and new_model.name != started_model
    evaluation = dvcbot(stack, "eval")
    assert started_model in evaluation and new_model.name in evaluation
    result = subprocess.run([sys.executable, "-m", "dvcbot.cli", "deploy"], capture_output=True, text=True,
                            cwd=PROJECT_ROOT, env=stack.env, timeout=900)
    if result.returncode != 0:  # the held-out data has no question about the new procedure (docs/editors.md)
        assert "Deploy refused" in result.stdout, result.stdout + result.stderr
        dvcbot(stack, "deploy", "--force")
    assert live_model(stack) == new_model.name

    # 5. the web chat answers the new question, from the catalog
    answer = ask(stack.url, QUESTION)
    assert "giám hộ" in answer.lower() and "Tờ khai đăng ký giám hộ" in answer, answer

    # 6. rollback: the old model, the old answer
    assert "Rolled back to" in dvcbot(stack, "rollback")
    assert live_model(stack) == started_model
    assert ask(stack.url, QUESTION) == old_answer

    # the repository's models and data were not touched; the deploy record is in the copy's var/
    assert sorted(p.name for p in (PROJECT_ROOT / "models").iterdir()) == repo_models
    assert {p: p.stat().st_mtime_ns for p in (PROJECT_ROOT / "data").rglob("*") if p.is_file()} == repo_data
    assert (stack.project / "var" / "deployments.json").is_file()
    assert stack.pids() == pids  # nothing was restarted
