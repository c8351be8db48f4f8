"""The action server's entry point: rasa-sdk's own Sanic app, plus ``GET /metrics`` and structured logs.

``python -m actions.server --port 5055`` replaces ``python -m rasa_sdk --actions actions``: the same routes
(``/webhook``, ``/health``, ``/actions``) built by ``rasa_sdk.endpoint.create_app`` around an executor that
registers every module of :mod:`actions`, and, in addition:

- ``/metrics`` (Prometheus): runs per action and outcome, run time per action, and the process's own figures;
  ``DVCBOT_METRICS_TOKEN`` set: the scrape needs ``Authorization: Bearer <token>``;
- logging as ``DVCBOT_LOG_FORMAT`` says (:mod:`dvcbot.logs`), each record of an action run carrying the tracker's
  sender id as its conversation.

It runs in one process (no Sanic worker processes), so the counters it serves are the ones its requests update.
The host is ``SANIC_HOST`` as for rasa-sdk (the supervisor and the Dockerfile set it), else
``DVCBOT_ACTIONS_HOST``.
"""

from __future__ import annotations

import argparse
import hmac
import os
import sys
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from rasa_sdk.constants import DEFAULT_KEEP_ALIVE_TIMEOUT
from rasa_sdk.endpoint import create_app
from rasa_sdk.executor import ActionExecutor
from rasa_sdk.interfaces import ActionExecutionRejection, ActionMissingDomainException, ActionNotFoundException
from sanic import Request, Sanic
from sanic.response import HTTPResponse, raw, text

from dvcbot import logs
from dvcbot.settings import Settings, get_settings

if __name__ == "__main__":
    # rasa-sdk imports every module of the package, this one included: let that import find this very module
    # instead of running it a second time (its metrics would be registered twice)
    sys.modules.setdefault("actions.server", sys.modules[__name__])

RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
ACTION_RUNS = Counter("dvcbot_action_runs", "Action calls from Rasa by action and outcome: ok, rejected (a form "
                      "validation refused the input), missing_domain (Rasa resends with its domain), not_found "
                      "(action label 'unknown'), error (the action raised)", ["action", "outcome"])
ACTION_SECONDS = Histogram("dvcbot_action_seconds", "How long each action took to run, failures included",
                           ["action"], buckets=RUN_BUCKETS)


class MeasuredExecutor(ActionExecutor):
    """rasa-sdk's executor, counting and timing each run and logging it under the conversation's sender id."""

    async def run(self, action_call: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        name = str(action_call.get("next_action") or "")
        tracker = action_call.get("tracker")
        sender = action_call.get("sender_id") or (tracker.get("sender_id") if isinstance(tracker, dict) else None)
        logs.conversation.set(str(sender) if sender else None)  # this request's task; reset per request below
        label = name if name in self.actions else "unknown"
        outcome = "error"
        started = time.perf_counter()
        try:
            result = await super().run(action_call, *args, **kwargs)
            outcome = "ok"
            return result
        except ActionExecutionRejection:
            outcome = "rejected"
            raise
        except ActionMissingDomainException:
            outcome = "missing_domain"
            raise
        except ActionNotFoundException:
            outcome = "not_found"
            raise
        finally:
            if name:
                ACTION_RUNS.labels(label, outcome).inc()
                ACTION_SECONDS.labels(label).observe(time.perf_counter() - started)


def build_app(settings: Settings, package: str = "actions") -> Sanic[Any, Any]:
    """rasa-sdk's app for the actions of ``package``, with ``/metrics``."""
    executor = MeasuredExecutor()
    executor.register_package(package)
    app: Sanic[Any, Any] = create_app(executor, cors_origins=None)
    app.config.KEEP_ALIVE_TIMEOUT = DEFAULT_KEEP_ALIVE_TIMEOUT
    token = settings.metrics_token.get_secret_value() if settings.metrics_token is not None else None

    @app.on_request
    async def forget_conversation(_: Request) -> None:
        # requests on one keep-alive connection share a task: the previous request's sender must not stick
        logs.conversation.set(None)

    @app.get("/metrics")
    async def metrics(request: Request) -> HTTPResponse:
        if token is not None and not hmac.compare_digest(
                request.headers.get("authorization", "").encode(), f"Bearer {token}".encode()):
            return text("unauthorized\n", status=401, headers={"WWW-Authenticate": "Bearer"})
        return raw(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)

    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m actions.server", description="the dvcbot action server")
    parser.add_argument("--port", type=int, default=None, help="default: DVCBOT_ACTIONS_PORT (5055)")
    parser.add_argument("--host", default=None, help="default: SANIC_HOST, else DVCBOT_ACTIONS_HOST (127.0.0.1)")
    parser.add_argument("--actions", default="actions", help="the package of actions (default: actions)")
    args = parser.parse_args(argv)
    settings = get_settings()
    logs.configure("actions", settings.log_format, settings.log_level)
    host = args.host or os.environ.get("SANIC_HOST") or settings.actions_host
    port = args.port or settings.actions_port
    app = build_app(settings, args.actions)
    app.run(host=host, port=port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
