"""Start Rasa's command line (``python -m nlu.server run …`` is ``rasa run …``) with speed-ups installed, and
with dvcbot's JSON log lines when ``DVCBOT_LOG_FORMAT=json`` (the production profile).

Rasa 3.6 checks every answer of the action server against its JSON schema with ``jsonschema.validate``, which
first checks the schema itself against the JSON-Schema meta-schema and builds a new validator, resolving the
schema's ``$ref``s, on every call: about 40 ms of CPU per custom action on a 2-core machine, more than the whole
NLU pipeline, spent in the Rasa server's single event loop. :func:`compile_action_validation` checks the schema
once and keeps the compiled validator; an answer it accepts is accepted, and an answer it rejects is handed to
Rasa's own check, so the error (type and message) a malformed answer raises is Rasa's own.

Rasa also finds the class of every event it reads back from the tracker store (each message reloads the whole
conversation) by walking every subclass of ``Event`` (``Event.resolve_by_type``): about 6 % of a Rasa server's
time under load here. :func:`cache_event_types` remembers the class found for each event name; a name it has not
seen goes through Rasa's own lookup, so unknown names fail as they do in Rasa.

Rasa's RulePolicy turns the whole conversation into dialogue states twice for the first prediction after each
message (once to match rules on the message's text, once on its intent), and the states are the same both times
up to the last user turn, which each caller edits in place. :func:`reuse_past_states` keeps the states computed for
a tracker and hands each caller its own copy while no event has been added (about a third of the RulePolicy's
state work here). The computation itself is Rasa's.

Rasa runs its prediction graphs (the NLU pipeline for each message, the policies for each prediction) through
dask's scheduler, which for every run cuts the graph down to what the targets need, builds a dask graph, orders it
and hands each node over as a task: about a tenth of a Rasa server's time under load here, for graphs of a dozen
nodes. :func:`sequential_graph_runs` makes Rasa load its models with a runner that calls the same nodes with the
same inputs one after the other, in an order worked out once per set of targets (Rasa 19 ms of CPU per message
instead of 21-23 in make bench's steady steps).

Rasa opens a new HTTP session, and so a new TCP connection, for every call to the action server
(``EndpointConfig.request``), and the action server accepts a new connection each time: 3-4 % of a Rasa server's
time under load here. :func:`keep_endpoint_connections` gives each endpoint one session per event loop, with
Rasa's own headers, authentication and timeout, whose idle connections are kept for 2 s (HAProxy closes them
after 10 s, the action server after 120 s; reusing one the other side has just closed would fail the call). A call
still fails as before when the server is down, and the next one connects anew. The session writes the JSON bodies
(for the action server: the whole conversation) with ujson, which gives the same JSON as the standard library
(floats included) three to four times faster; what ujson cannot encode goes through ``json.dumps`` as before.

Each of the pipeline's three ``CountVectorsFeaturizer``s turns a message into features with two calls of
scikit-learn's ``CountVectorizer.transform`` (one row per token, then the whole text), each building a CSR matrix
that Rasa sorts and converts to COO: about 12 % of a Rasa server's time, most of it in building matrices for a
handful of tokens and in cutting the same tokens into character n-grams again. :func:`fast_count_vectors` counts
the same n-grams against the same vocabulary (a token's counts are remembered: the vocabulary does not change once
loaded) and builds the COO matrices directly, with the same shape, types, order and values; Rasa's own code runs
for anything else (several messages at once, no tokens, binary counts, a vectorizer not fitted).

With ``DVCBOT_LOG_FORMAT=json``, :func:`json_logs` puts :mod:`dvcbot.logs`'s handler where Rasa would install
coloredlogs: one JSON object per line, personal numbers masked, ``role`` "rasa", like the gateway and the action
server. Otherwise Rasa logs as it always does.

The editors' inbox of low-confidence messages is fed by ``action_note_message``, which Rasa's
``action_extract_slots`` calls after every user message (a custom slot mapping in ``domain/core.yml``): one call
to the action server per message, with the whole tracker as JSON, although the action stores nothing for most of
them. With ``DVCBOT_INBOX_LOW_CONFIDENCE`` set (the action server's own threshold; ``dvcbot.supervisor`` and
docker-compose.yml pass it to both), :func:`skip_confident_inbox_notes` makes Rasa call it only for a message the
action would store — a real intent below the threshold, outside a form; the action still checks the same. Unset,
every message is sent as before.

Rasa's telemetry and its error reports to Sentry are turned off unless ``RASA_TELEMETRY_ENABLED`` says otherwise.
"""

from __future__ import annotations

import logging
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any

_INSTALLED = "_dvcbot_compiled_validation"
_CACHED = "_dvcbot_cached_event_types"
_FILTERED = "_dvcbot_inbox_filter"
_REUSED = "_dvcbot_reused_past_states"
_KEPT = "_dvcbot_kept_session"
_SESSIONS: dict[int, tuple[Any, Any, Any]] = {}  # id(endpoint) -> (weak reference to it, event loop, session)
_FAST = "_dvcbot_fast_count_vectors"
TOKEN_CACHE = 50_000  # tokens whose counts a vectorizer remembers (then it starts again)
KEEPALIVE_SECONDS = 2.0  # below HAProxy's 10 s (docker/haproxy.cfg) and the action server's 120 s (rasa-sdk's)
NOTE_ACTION = "action_note_message"  # actions/editor/inbox_action.py
FALLBACK_INTENT = "nlu_fallback"  # recorded by action_fallback instead


def compile_action_validation() -> None:
    """Replace ``RemoteAction._validate_action_result`` with one that uses a validator compiled once (idempotent)."""
    from jsonschema import validators
    from rasa.core.actions.action import RemoteAction

    original: Callable[[Any, dict[str, Any]], bool] = RemoteAction._validate_action_result
    if getattr(original, _INSTALLED, False):
        return
    compiled: dict[type, Any] = {}

    def validate_action_result(self: Any, result: dict[str, Any]) -> bool:
        validator = compiled.get(type(self))
        if validator is None:
            schema = self.action_response_format_spec()
            cls = validators.validator_for(schema)
            cls.check_schema(schema)
            validator = compiled[type(self)] = cls(schema)
        if validator.is_valid(result):
            return True
        return original(self, result)  # raises Rasa's own error for the answer

    setattr(validate_action_result, _INSTALLED, True)
    RemoteAction._validate_action_result = validate_action_result  # type: ignore[method-assign]


def cache_event_types() -> None:
    """Replace ``Event.resolve_by_type`` with one that remembers the class found for each name (idempotent)."""
    from rasa.shared.core.events import Event

    original: Callable[..., Any] = Event.resolve_by_type
    if getattr(original, _CACHED, False):
        return
    found: dict[str, type] = {}

    def resolve_by_type(type_name: str, default: type | None = None) -> type | None:
        cls = found.get(type_name)
        if cls is None:
            cls = original(type_name, default)
            if cls is not None and cls is not default:
                found[type_name] = cls
        return cls

    setattr(resolve_by_type, _CACHED, True)
    Event.resolve_by_type = staticmethod(resolve_by_type)  # type: ignore[method-assign,assignment]


def _copy_states(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # a state maps a part (user, prev_action, slots, active_loop) to a dict of immutable values (str, tuples)
    return [{part: dict(sub) for part, sub in state.items()} for state in states]


def reuse_past_states() -> None:
    """Make ``DialogueStateTracker.past_states`` reuse what it computed for the same tracker while no event was
    added since; every caller gets a copy of its own (idempotent)."""
    from rasa.shared.core.trackers import DialogueStateTracker

    original: Callable[..., Any] = DialogueStateTracker.past_states
    if getattr(original, _REUSED, False):
        return

    def past_states(self: Any, domain: Any, omit_unset_slots: bool = False, ignore_rule_only_turns: bool = False,
                    rule_only_data: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        events = self.events
        if not events or events.maxlen is not None:  # a bounded history can change without growing
            return original(self, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)  # type: ignore[no-any-return]
        # the objects themselves, held by the memo, so that an id cannot be reused meanwhile
        key = (len(events), events[-1], domain, omit_unset_slots, ignore_rule_only_turns)
        memo = self.__dict__.get(_REUSED)
        if (memo is not None and memo[0][0] == key[0] and memo[0][1] is key[1] and memo[0][2] is key[2]
                and memo[0][3:] == key[3:] and memo[1] == rule_only_data):
            return _copy_states(memo[2])
        states = original(self, domain, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        self.__dict__[_REUSED] = (key, rule_only_data, _copy_states(states))
        return states  # type: ignore[no-any-return]

    setattr(past_states, _REUSED, True)
    DialogueStateTracker.past_states = past_states  # type: ignore[method-assign]


def sequential_graph_runs() -> None:
    """Run Rasa's prediction graphs node after node, in an order worked out once per set of targets."""
    import rasa.core.processor
    from rasa.engine.exceptions import GraphRunError
    from rasa.engine.runner.dask import DaskGraphRunner

    if rasa.core.processor.DaskGraphRunner is not DaskGraphRunner:
        return  # installed already

    class SequentialGraphRunner(DaskGraphRunner):
        """``DaskGraphRunner`` with its graph evaluated in plain Python: the same nodes, called with the same inputs,
        in an order where every node comes after the nodes it needs."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._orders: dict[tuple[str, ...], list[tuple[str, tuple[str, ...]]]] = {}

        def _order(self, targets: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
            order = self._orders.get(targets)
            if order is None:
                schema = self._graph_schema.minimal_graph_schema(list(targets))
                order, placed = [], set()

                def place(name: str) -> None:  # depth first: what a node needs goes before it
                    if name in placed or name not in schema.nodes:
                        return  # done already, or an input of the run
                    placed.add(name)
                    needs = tuple(schema.nodes[name].needs.values())
                    for need in needs:
                        place(need)
                    order.append((name, needs))

                for target in targets:
                    place(target)
                order = self._orders[targets] = order
            return order

        def run(self, inputs: dict[str, Any] | None = None, targets: list[str] | None = None) -> dict[str, Any]:
            run_targets = tuple(targets if targets else self._graph_schema.target_names)
            order = self._order(run_targets)
            values: dict[str, Any] = {}
            for name, value in (inputs or {}).items():
                if isinstance(value, str) and value in self._graph_schema.nodes:
                    raise GraphRunError(f"Input value '{value}' clashes with a node name. Make sure that none of the "
                                        "input names passed to the `run` method are the same as node names in the "
                                        "graph schema.")
                values[name] = (name, value)  # what a node receives from an input, as under dask
            try:
                for name, needs in order:
                    values[name] = self._instantiated_nodes[name](*(values[need] for need in needs))
            except RuntimeError as exc:
                raise GraphRunError("Error running runner.") from exc
            return dict(values[target] for target in run_targets)

    rasa.core.processor.DaskGraphRunner = SequentialGraphRunner  # type: ignore[misc]


def worth_noting(intent: dict[str, Any] | None, active_loop: str | None, threshold: float) -> bool:
    """Whether ``action_note_message`` would store a message with this ``intent`` (its own test, in Rasa)."""
    name = (intent or {}).get("name")
    if not name or name == FALLBACK_INTENT or active_loop:
        return False
    return float((intent or {}).get("confidence") or 0.0) < threshold


def skip_confident_inbox_notes(threshold: str | None = None) -> bool:
    """Make ``action_extract_slots`` call ``action_note_message`` only for messages it would store; ``False`` (and
    nothing changed) when no valid threshold is given (default: ``DVCBOT_INBOX_LOW_CONFIDENCE``)."""
    from rasa.core.actions.action import ActionExtractSlots

    raw = os.environ.get("DVCBOT_INBOX_LOW_CONFIDENCE") if threshold is None else threshold
    try:
        limit = float(raw or "")
    except ValueError:
        if raw:
            print(f"DVCBOT_INBOX_LOW_CONFIDENCE={raw!r} is not a number: every message goes to {NOTE_ACTION}",
                  file=sys.stderr)
        return False
    original: Callable[..., Any] = getattr(ActionExtractSlots._run_custom_action, "__wrapped__",
                                           ActionExtractSlots._run_custom_action)

    async def run_custom_action(self: Any, custom_action: str, output_channel: Any, nlg: Any, tracker: Any,
                                domain: Any) -> list[Any]:
        if custom_action == NOTE_ACTION and not worth_noting(tracker.latest_message.intent,
                                                             tracker.active_loop_name, limit):
            return []
        return await original(self, custom_action, output_channel, nlg, tracker, domain)

    run_custom_action.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(run_custom_action, _FILTERED, limit)
    ActionExtractSlots._run_custom_action = run_custom_action  # type: ignore[method-assign]
    return True


class _Kept:
    """``async with`` on a kept session: hands it out and leaves it open."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def __aenter__(self) -> Any:
        return self.session

    async def __aexit__(self, *exc: object) -> None:
        return None


def fast_dumps(obj: Any) -> str:
    """``json.dumps(obj)`` as the same JSON, written by ujson (UTF-8 kept, ``/`` not escaped)."""
    import json

    import ujson

    try:
        return str(ujson.dumps(obj, ensure_ascii=False, escape_forward_slashes=False))
    except (TypeError, ValueError, OverflowError):  # the standard library raises its own error, or copes
        return json.dumps(obj)


def keep_endpoint_connections() -> None:
    """Make ``EndpointConfig.session()`` hand out one kept session per endpoint and event loop."""
    import asyncio

    import aiohttp
    from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

    if getattr(EndpointConfig.session, _KEPT, False):
        return
    original: Callable[..., Any] = EndpointConfig.session

    def session(self: Any) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not called from a coroutine: a session of its own, as Rasa makes it
            return original(self)
        # by id (an EndpointConfig is not hashable), checked against a weak reference: nothing is added to the
        # endpoint itself, which Rasa may copy
        kept = _SESSIONS.get(id(self))
        if kept is None or kept[0]() is not self or kept[1] is not loop or kept[2].closed:
            auth = aiohttp.BasicAuth(self.basic_auth["username"], self.basic_auth["password"]) \
                if self.basic_auth else None
            connector = aiohttp.TCPConnector(keepalive_timeout=KEEPALIVE_SECONDS)
            kept = (weakref.ref(self), loop, aiohttp.ClientSession(
                connector=connector, headers=self.headers, auth=auth, json_serialize=fast_dumps,
                timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT)))
            _SESSIONS[id(self)] = kept
        return _Kept(kept[2])

    setattr(session, _KEPT, True)
    session.__wrapped__ = original  # type: ignore[attr-defined]
    EndpointConfig.session = session  # type: ignore[method-assign]

    import rasa.core.run

    close_resources: Callable[..., Any] = rasa.core.run.close_resources

    async def closing_resources(app: Any, loop: Any) -> None:
        """Rasa's own clean-up when the server stops, then the kept sessions (else aiohttp logs an error each)."""
        try:
            await close_resources(app, loop)
        finally:
            await close_kept_sessions()

    rasa.core.run.close_resources = closing_resources  # registered by serve_application, which reads it later


async def close_kept_sessions() -> None:
    """Close the kept sessions of the running event loop."""
    import asyncio

    loop = asyncio.get_running_loop()
    for key, (_, owner, session) in list(_SESSIONS.items()):
        if owner is loop:
            del _SESSIONS[key]
            await session.close()


def fast_count_vectors(cache_size: int = TOKEN_CACHE) -> None:
    """Make ``CountVectorsFeaturizer`` featurize one message without ``CountVectorizer.transform`` (same result)."""
    import numpy as np
    import scipy.sparse
    from rasa.nlu.constants import DENSE_FEATURIZABLE_ATTRIBUTES
    from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import CountVectorsFeaturizer

    if getattr(CountVectorsFeaturizer._create_features, _FAST, False):
        return
    original: Callable[..., Any] = CountVectorsFeaturizer._create_features
    # per vectorizer: (the vocabulary it was read with, its analyzer, token -> sorted (column, count) pairs)
    state: weakref.WeakKeyDictionary[Any, tuple[Any, Any, dict[str, list[tuple[int, int]]]]] = \
        weakref.WeakKeyDictionary()

    def create_features(self: Any, attribute: str, all_tokens: list[list[str]]) -> Any:
        vectorizer = (self.vectorizers or {}).get(attribute)
        vocabulary = getattr(vectorizer, "vocabulary_", None)
        if vectorizer is None or vocabulary is None or vectorizer.binary or len(all_tokens) != 1 \
                or not all_tokens[0]:
            return original(self, attribute, all_tokens)
        known = state.get(vectorizer)
        if known is None or known[0] is not vocabulary:
            known = state[vectorizer] = (vocabulary, vectorizer.build_analyzer(), {})
        _, analyze, remembered = known

        def counts(text: str) -> list[tuple[int, int]]:
            counter: dict[int, int] = {}
            for feature in analyze(text):
                index = vocabulary.get(feature)
                if index is not None:
                    counter[index] = counter.get(index, 0) + 1
            return sorted(counter.items())

        def matrix(rows: list[int], pairs: list[tuple[int, int]], height: int) -> Any:
            return scipy.sparse.coo_matrix(
                (np.array([c for _, c in pairs], dtype=vectorizer.dtype),
                 (np.array(rows, dtype=np.int32), np.array([i for i, _ in pairs], dtype=np.int32))),
                shape=(height, len(vocabulary)))

        tokens = all_tokens[0]
        rows: list[int] = []
        pairs: list[tuple[int, int]] = []
        for row, token in enumerate(tokens):
            found = remembered.get(token)
            if found is None:
                if len(remembered) >= cache_size:
                    remembered.clear()
                found = remembered[token] = counts(token)
            rows.extend([row] * len(found))
            pairs.extend(found)
        sequence = matrix(rows, pairs, len(tokens))
        sentence = None
        if attribute in DENSE_FEATURIZABLE_ATTRIBUTES:
            whole = counts(" ".join(tokens))
            sentence = matrix([0] * len(whole), whole, 1)
        return [sequence], [sentence]

    setattr(create_features, _FAST, True)
    create_features.__wrapped__ = original  # type: ignore[attr-defined]
    CountVectorsFeaturizer._create_features = create_features  # type: ignore[method-assign]


def json_logs() -> None:
    """With ``DVCBOT_LOG_FORMAT=json``, replace Rasa's coloured console logging by dvcbot's JSON lines."""
    if os.environ.get("DVCBOT_LOG_FORMAT", "text") != "json":
        return
    import rasa.utils.io

    try:
        from dvcbot import logs
    except ImportError as exc:  # an image without dvcbot/logs.py: Rasa's own logging rather than no server
        print(f"DVCBOT_LOG_FORMAT=json ignored: {exc}", file=sys.stderr)
        return

    def configure(loglevel: int | str | None = None) -> None:
        level = loglevel or os.environ.get("LOG_LEVEL") or "INFO"
        root = logging.getLogger()
        for handler in list(root.handlers):  # Rasa's, or those of an earlier call
            root.removeHandler(handler)
        logs.configure("rasa", "json", level if isinstance(level, int) else str(level))

    rasa.utils.io.configure_colored_logging = configure  # type: ignore[assignment]


def main() -> None:
    # Rasa's telemetry and error reports (Sentry) stay off however the server is started: a conversation's data
    # must not leave the post office's servers (an explicit RASA_TELEMETRY_ENABLED still wins)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    compile_action_validation()
    cache_event_types()
    reuse_past_states()
    sequential_graph_runs()
    keep_endpoint_connections()
    fast_count_vectors()
    skip_confident_inbox_notes()
    json_logs()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
