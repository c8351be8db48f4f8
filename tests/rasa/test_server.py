"""nlu/server.py: Rasa started with its action-answer check compiled once must judge answers exactly as Rasa does."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from nlu.server import (
    cache_event_types,
    compile_action_validation,
    json_logs,
    reuse_past_states,
    sequential_graph_runs,
    skip_confident_inbox_notes,
)
from tests.rasa.conftest import REPO_ROOT

VALID: list[dict[str, Any]] = [
    {},
    {"events": [], "responses": []},
    {"events": [{"event": "slot", "name": "procedure", "value": "khai_sinh"}],
     "responses": [{"text": "Dạ", "buttons": [{"title": "Lệ phí", "payload": "/procedure_fee"}]}]},
    {"events": [{"event": "active_loop", "name": None}, {"event": "followup", "name": "action_listen"}],
     "responses": [{"custom": {"handoff": {"reason": "fallback"}}}]},
]
INVALID: list[dict[str, Any]] = [
    {"events": [{"event": "no_such_event"}]},
    {"events": {"event": "slot"}},
    {"responses": "text"},
    {"events": [{"event": "slot"}]},  # a slot event without its name
]


def trained_model() -> Path:
    """The model ``make model`` trained (the test fails without one when services are required, else skips)."""
    from tests.conftest import REQUIRE

    fingerprint = REPO_ROOT / "models" / "fingerprint.json"
    name = json.loads(fingerprint.read_text(encoding="utf-8")).get("model") if fingerprint.is_file() else None
    model = REPO_ROOT / "models" / str(name)
    if not name or not model.is_file():
        if REQUIRE:
            pytest.fail("no trained Rasa model in models/ (run `make model`)")
        pytest.skip("no trained Rasa model in models/ (run `make model`)")
    return model


def rasa_judges(answer: dict[str, Any]) -> bool:
    """Rasa's own check, as it runs without nlu/server.py."""
    try:
        jsonschema.validate(answer, RemoteAction.action_response_format_spec())
    except jsonschema.ValidationError:
        return False
    return True


@pytest.fixture(scope="module")
def action() -> RemoteAction:
    compile_action_validation()
    compile_action_validation()  # idempotent: installed once
    return RemoteAction("action_answer_procedure", None)


@pytest.mark.parametrize("answer", VALID)
def test_answers_rasa_accepts_are_accepted(action: RemoteAction, answer: dict[str, Any]) -> None:
    assert rasa_judges(answer)
    assert action._validate_action_result(answer) is True


@pytest.mark.parametrize("answer", INVALID)
def test_answers_rasa_rejects_raise_rasas_own_error(action: RemoteAction, answer: dict[str, Any]) -> None:
    assert not rasa_judges(answer)
    with pytest.raises(jsonschema.ValidationError, match="Failed to validate Action server response"):
        action._validate_action_result(answer)


def test_the_check_is_installed_once(action: RemoteAction) -> None:
    assert getattr(RemoteAction._validate_action_result, "_dvcbot_compiled_validation", False)
    compile_action_validation()
    assert RemoteAction._validate_action_result.__closure__ is not None
    inner = [c.cell_contents for c in RemoteAction._validate_action_result.__closure__]
    assert not any(getattr(c, "_dvcbot_compiled_validation", False) for c in inner if callable(c))


def test_event_classes_are_found_as_rasa_finds_them() -> None:
    from rasa.shared.core import events
    from rasa.shared.utils.common import all_subclasses

    def rasa_finds(name: str) -> type | None:
        return next((c for c in all_subclasses(events.Event) if c.type_name == name), None)

    names = sorted({c.type_name for c in all_subclasses(events.Event)})
    cache_event_types()
    cache_event_types()  # idempotent
    for name in names:
        assert events.Event.resolve_by_type(name) is rasa_finds(name)
        assert events.Event.resolve_by_type(name) is rasa_finds(name)  # from the cache
    assert events.Event.resolve_by_type("no_such_event", events.ActionExecuted) is events.ActionExecuted
    assert events.Event.resolve_by_type("topic") is None
    with pytest.raises(ValueError, match="Unknown event name"):
        events.Event.resolve_by_type("no_such_event")
    user = events.Event.from_parameters({"event": "user", "text": "lệ phí khai sinh",
                                         "parse_data": {"intent": {"name": "ask_fee"}, "entities": []}})
    assert isinstance(user, events.UserUttered) and user.text == "lệ phí khai sinh"


def test_json_logs_take_the_place_of_rasas_coloured_console(monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    import rasa.utils.io

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    monkeypatch.setattr(rasa.utils.io, "configure_colored_logging", rasa.utils.io.configure_colored_logging)
    monkeypatch.delenv("DVCBOT_LOG_FORMAT", raising=False)
    json_logs()  # text (the default): Rasa's own logging stays
    assert rasa.utils.io.configure_colored_logging.__module__ == "rasa.utils.io"
    monkeypatch.setenv("DVCBOT_LOG_FORMAT", "json")
    try:
        json_logs()
        rasa.utils.io.configure_colored_logging(logging.INFO)  # where `rasa run` installs coloredlogs
        root.addHandler(logging.NullHandler())
        rasa.utils.io.configure_colored_logging(logging.INFO)  # again: still one handler, ours
        assert len(root.handlers) == 1
        logging.getLogger("rasa.core.tracker_store").warning("tracker of %s: CCCD %s", "0912345678", "001099012345")
        out = capsys.readouterr().err.strip().splitlines()
        entry = json.loads(out[-1])
        assert entry["role"] == "rasa" and entry["level"] == "WARNING" and entry["logger"] == "rasa.core.tracker_store"
        assert entry["message"] == "tracker of *******678: CCCD *********345"
        assert entry["time"].endswith("Z")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_the_module_is_rasas_command_line_without_telemetry(tmp_path: Path) -> None:
    # a home where Rasa has never been told anything: plain `rasa` would report telemetry from there
    env = {**{k: v for k, v in os.environ.items() if k != "RASA_TELEMETRY_ENABLED"}, "HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "nlu.server", "telemetry"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Telemetry reporting is currently disabled" in proc.stdout, proc.stdout[-2000:]
    proc = subprocess.run([sys.executable, "-m", "nlu.server", "--version"], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Rasa Version" in proc.stdout and "3.6." in proc.stdout


def test_action_note_message_is_called_only_for_what_it_would_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real action endpoint (aiohttp on loopback) counts the calls ``action_extract_slots`` makes."""
    import asyncio

    from aiohttp import web
    from rasa.core.actions.action import ActionExtractSlots
    from rasa.core.channels import CollectingOutputChannel
    from rasa.core.nlg import TemplatedNaturalLanguageGenerator
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActiveLoop, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker
    from rasa.utils.endpoints import EndpointConfig

    domain = Domain.load(str(REPO_ROOT / "domain"))
    monkeypatch.setattr(ActionExtractSlots, "_run_custom_action", ActionExtractSlots._run_custom_action)
    assert not skip_confident_inbox_notes("")  # no threshold: nothing changes
    assert not skip_confident_inbox_notes("much")
    assert not hasattr(ActionExtractSlots._run_custom_action, "_dvcbot_inbox_filter")
    assert skip_confident_inbox_notes("0.6")
    assert skip_confident_inbox_notes("0.6")  # idempotent: wraps Rasa's own method once
    assert ActionExtractSlots._run_custom_action.__wrapped__.__module__ == "rasa.core.actions.action"

    cases = [  # (intent, confidence, inside a form) -> called
        ("ask_fee", 0.95, False, False),
        ("ask_fee", 0.6, False, False),
        ("ask_fee", 0.59, False, True),
        ("ask_fee", 0.2, True, False),  # an answer to a form
        ("nlu_fallback", 0.2, False, False),  # action_fallback records those
    ]

    async def run() -> list[str]:
        called: list[str] = []

        async def webhook(request: web.Request) -> web.Response:
            body = await request.json()
            called.append(f"{body['next_action']}:{body['tracker']['latest_message']['text']}")
            return web.json_response({"events": [], "responses": []})

        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            action = ActionExtractSlots(EndpointConfig(f"http://127.0.0.1:{port}/webhook"))
            for n, (intent, confidence, in_form, _) in enumerate(cases):
                events = [ActiveLoop("dossier_form")] if in_form else []
                events.append(UserUttered(f"m{n}", {"name": intent, "confidence": confidence}))
                tracker = DialogueStateTracker.from_events("a", events, domain.slots)
                await action.run(CollectingOutputChannel(), TemplatedNaturalLanguageGenerator(domain.responses),
                                 tracker, domain)
        finally:
            await runner.cleanup()
        return called

    called = asyncio.run(run())
    assert called == [f"action_note_message:m{n}" for n, case in enumerate(cases) if case[3]]


def test_past_states_are_rasas_and_each_caller_gets_its_own_copy() -> None:
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted, ActiveLoop, BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    domain = Domain.load(str(REPO_ROOT / "domain"))
    reuse_past_states()
    reuse_past_states()  # idempotent
    events = [ActionExecuted("action_listen"),
              UserUttered("lệ phí khai sinh", {"name": "procedure_fee", "confidence": 0.9},
                          [{"entity": "procedure", "value": "khai_sinh", "start": 7, "end": 16}]),
              SlotSet("procedure", "khai_sinh"), ActionExecuted("action_answer_procedure"), BotUttered("Dạ"),
              ActionExecuted("action_listen"),
              UserUttered("tra hồ sơ", {"name": "dossier_status", "confidence": 0.8}),
              ActionExecuted("dossier_form"), ActiveLoop("dossier_form")]
    tracker = DialogueStateTracker.from_events("a", events, domain.slots)
    rule_only = {"slots": ["fallback_streak"], "loops": []}
    computed = []
    rasas = domain.states_for_tracker_history

    def counting(*args: Any, **kwargs: Any) -> Any:
        computed.append(args)
        return rasas(*args, **kwargs)

    domain.states_for_tracker_history = counting  # type: ignore[method-assign]
    for args in [(False, False, None), (True, False, None), (False, True, rule_only)]:
        expected = rasas(tracker, *args)
        for _ in range(3):
            got = tracker.past_states(domain, *args)
            assert got == expected
            got[-1].clear()  # callers edit what they get (the featurizer drops the text or the intent)
            got[-2].get("user", {}).clear()
    assert len(computed) == 3  # once per set of arguments
    again = tracker.past_states(domain, False, True, {"slots": [], "loops": []})  # other rule-only data
    assert again == rasas(tracker, False, True, {"slots": [], "loops": []}) and len(computed) == 4
    tracker.update(ActionExecuted("action_listen"))  # a new event: computed again
    assert tracker.past_states(domain) == rasas(tracker) and len(computed) == 5


def test_the_sequential_graph_runner_gives_what_dask_gives() -> None:
    """The trained model, loaded once with Rasa's DaskGraphRunner and once with the sequential one: the same parse
    of held-out messages and the same next action after each."""
    import asyncio

    import rasa.core.processor
    from rasa.core.agent import Agent
    from rasa.engine.runner.dask import DaskGraphRunner
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    from nlu.evaluate import read_examples

    model = trained_model()

    texts = [e.text for e in read_examples(REPO_ROOT / "data" / "heldout" / "nlu.yml")][:60]
    texts += ["", "xin chào", "lệ phí làm căn cước bao nhiêu", "tra hồ sơ", "/human_handoff"]

    def outputs(agent: Any) -> list[tuple[Any, ...]]:
        async def run() -> list[tuple[Any, ...]]:
            got = []
            for text in texts:
                parsed = await agent.parse_message(text)
                tracker = DialogueStateTracker.from_events(
                    "a", [ActionExecuted("action_listen"), UserUttered(text, parsed["intent"], parsed["entities"],
                                                                        parsed)], agent.domain.slots)
                prediction = agent.processor._predict_next_with_tracker(tracker)
                got.append((parsed["intent"], parsed["entities"], parsed["intent_ranking"],
                            prediction.max_confidence_index, prediction.policy_name, prediction.probabilities))
            return got

        return asyncio.run(run())

    saved = rasa.core.processor.DaskGraphRunner
    try:
        rasa.core.processor.DaskGraphRunner = DaskGraphRunner  # type: ignore[misc]
        dask_agent = Agent.load(str(model))
        sequential_graph_runs()
        sequential_graph_runs()  # idempotent
        assert rasa.core.processor.DaskGraphRunner is not DaskGraphRunner
        ours = Agent.load(str(model))
    finally:
        rasa.core.processor.DaskGraphRunner = saved  # type: ignore[misc]
    assert type(dask_agent.processor.graph_runner) is DaskGraphRunner
    assert type(ours.processor.graph_runner).__name__ == "SequentialGraphRunner"
    assert outputs(ours) == outputs(dask_agent)


def test_endpoint_calls_share_a_kept_connection_with_rasas_headers_and_token() -> None:
    import asyncio
    import socket
    import types

    import rasa.core.run
    from aiohttp import ClientError, web
    from rasa.utils.endpoints import EndpointConfig

    from nlu.server import keep_endpoint_connections

    keep_endpoint_connections()
    keep_endpoint_connections()  # idempotent
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen: list[tuple[int, str | None, str | None, Any]] = []

    async def webhook(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append((peer[1] if peer else 0, request.headers.get("X-Post-Office"), request.query.get("token"),
                     await request.json()))
        return web.json_response({"events": [], "responses": [{"text": "dạ"}]})

    async def serving() -> web.AppRunner:
        app = web.Application()
        app.router.add_post("/webhook", webhook)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner

    async def scenario() -> list[str]:
        endpoint = EndpointConfig(f"http://127.0.0.1:{port}/webhook", headers={"X-Post-Office": "Hà Nội"},
                                  token="bí-mật")
        outcomes = []
        runner = await serving()
        for i in range(3):
            answer = await endpoint.request(json={"next_action": f"a{i}", "tracker": TRACKER}, method="post")
            outcomes.append(answer["responses"][0]["text"])
        await runner.cleanup()  # the action server goes away ...
        try:
            await endpoint.request(json={"next_action": "down"}, method="post")
            outcomes.append("answered")
        except ClientError:
            outcomes.append("failed")
        runner = await serving()  # ... and comes back: the next call connects anew
        outcomes.append((await endpoint.request(json={"next_action": "again"}, method="post"))["responses"][0]["text"])
        async with endpoint.session() as kept:
            app = types.SimpleNamespace(ctx=types.SimpleNamespace())  # a Sanic app without an agent
            await rasa.core.run.close_resources(app, None)  # the server stops: Rasa's clean-up, then ours
        assert kept.closed
        await runner.cleanup()
        return outcomes

    assert asyncio.run(scenario()) == ["dạ", "dạ", "dạ", "failed", "dạ"]
    assert [s[3]["next_action"] for s in seen] == ["a0", "a1", "a2", "again"]
    assert all(s[3]["tracker"] == json.loads(json.dumps(TRACKER)) for s in seen[:3])  # the same JSON arrived
    assert {(s[1], s[2]) for s in seen} == {("Hà Nội", "bí-mật")}
    assert len({s[0] for s in seen[:3]}) == 1  # three calls, one connection


TRACKER: dict[str, Any] = {  # the shape Rasa sends the action server, with what is awkward to encode
    "sender_id": "telegram:123456789",
    "slots": {"procedure": "khai_sinh", "dossier_code": None, "verified": False, "attempts": 2.0},
    "latest_message": {"text": "cho em hỏi làm giấy khai sinh/ hộ tịch cần gì ạ? \"gấp\" \u0000",
                       "intent": {"name": "ask_procedure", "confidence": 0.8765432109876543},
                       "intent_ranking": [{"name": "ask_fee", "confidence": 1.2345678901234567e-05}]},
    "events": [{"event": "user", "timestamp": 1764201234.5678911, "text": "xin chào 👋"},
               {"event": "slot", "name": "huge", "value": 2 ** 70}],
}


def test_fast_dumps_writes_the_json_the_standard_library_writes() -> None:
    from nlu.server import fast_dumps

    assert json.loads(fast_dumps(TRACKER)) == json.loads(json.dumps(TRACKER))
    assert json.loads(fast_dumps({"x": 2 ** 70, "y": float("nan")}))["x"] == 2 ** 70
    with pytest.raises(TypeError):
        fast_dumps({"x": {1, 2}})  # what neither can encode fails as it did


def test_fast_count_vectors_give_rasas_own_features(monkeypatch: pytest.MonkeyPatch) -> None:
    """The trained model's three CountVectorsFeaturizers, on held-out messages: the same COO matrices (shape, types,
    order, values) as Rasa's own code, for every message, whether its tokens were seen before or not."""
    from rasa.core.agent import Agent
    from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer
    from rasa.nlu.tokenizers.tokenizer import Tokenizer
    from rasa.shared.nlu.constants import TEXT
    from rasa.shared.nlu.training_data.message import Message

    from nlu.evaluate import read_examples
    from nlu.server import fast_count_vectors

    model = trained_model()
    nodes = Agent.load(str(model)).processor.graph_runner._instantiated_nodes.values()
    components = [node._component for node in nodes]
    tokenizer = next(c for c in components if isinstance(c, Tokenizer))
    featurizers = [c for c in components if isinstance(c, CountVectorsFeaturizer)]
    assert len(featurizers) == 3

    texts = [e.text for e in read_examples(REPO_ROOT / "data" / "heldout" / "nlu.yml")]
    texts += ["xin chào", "xin chào", "zzqx kkkk 12345 !!!", "lệ phí làm căn cước bao nhiêu", "/human_handoff"]
    original = getattr(CountVectorsFeaturizer._create_features, "__wrapped__", CountVectorsFeaturizer._create_features)
    fast_count_vectors(cache_size=50)  # small: the remembered counts are also dropped and made again
    fast_count_vectors()  # idempotent
    fast = CountVectorsFeaturizer._create_features
    assert fast is not original

    def same(a: Any, b: Any) -> bool:
        if a is None or b is None:
            return a is None and b is None
        return (a.format, a.shape, a.dtype, a.row.dtype, a.col.dtype) == (b.format, b.shape, b.dtype, b.row.dtype,
                                                                        b.col.dtype) \
            and (a.row == b.row).all() and (a.col == b.col).all() and (a.data == b.data).all()

    from sklearn.feature_extraction.text import CountVectorizer

    transforms = []
    transform = CountVectorizer.transform
    monkeypatch.setattr(CountVectorizer, "transform", lambda self, docs: transforms.append(1) or transform(self, docs))
    compared = 0
    for text in texts * 2:  # the second time round, every token's counts are remembered
        message = Message({TEXT: text})
        tokenizer.process([message])
        for featurizer in featurizers:
            tokens = featurizer._get_processed_message_tokens_by_attribute(message, TEXT)
            ours = fast(featurizer, TEXT, [tokens])
            assert not transforms  # the fast path, not Rasa's
            rasas = original(featurizer, TEXT, [tokens])
            transforms.clear()
            assert all(same(a, b) for a, b in zip(ours[0] + ours[1], rasas[0] + rasas[1], strict=True)), text
            compared += 1
    assert compared == len(texts) * 2 * 3
