"""``reports/bench.md``: the figures of a benchmark run, the verdict on the targets, and where the time goes."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from bench.profile import Probe, median_ms
from bench.run import StepResult, median, percentile

TARGET_RATE = 30.0
TARGET_P95 = 0.5


READING = [
    "### Reading the profile", "",
    "- A Rasa server works on one message at a time in its single event loop, and its SQL tracker store and Redis "
    "lock store are synchronous calls inside that loop: one server's throughput is bounded by its CPU time per "
    "message plus those waits, whatever the cores.",
    "- Rasa validates every answer of the action server against a JSON schema "
    "(`rasa.core.actions.action.RemoteAction`); with `jsonschema.validate` that took 40-57 ms per custom action "
    "here (the schema re-checked and its `$ref`s resolved through `urllib` on every call), so the Rasa servers run "
    "through `nlu/server.py`, which compiles that check once (~1 ms), remembers the class of each event name (Rasa "
    "walked every `Event` subclass for each event it read back, ~6 % of its time), reuses a tracker's dialogue "
    "states while no event was added (the RulePolicy computed them twice for the first prediction after each "
    "message; in process, 16-18 → 12 ms of CPU per message) and calls `action_note_message` (the editors' inbox) "
    "only for a message it would store, instead of after every message. The tracker store "
    "(`nlu/tracker_store.py`) remembers recently active conversations, checked against the database's highest event "
    "id, instead of reloading and re-counting the conversation on every message (Rasa 30-32 → 23 ms of CPU per "
    "message with the inbox change, same-hour A/B); a remembered message's two statements go to psycopg2 directly "
    "(SQLAlchemy compiled the multi-row insert anew each time: 1.7 → 0.3 ms). Rasa ran its prediction graphs through "
    "dask's scheduler, which cut, built and ordered the graph again for every run (about a tenth of its time); "
    "`nlu/server.py` runs the same nodes one after the other in an order worked out once (21-23 → 19 ms of CPU per "
    "message). It also keeps one HTTP session per endpoint (Rasa opened a new session and TCP connection for "
    "every call to the action server), writes the action server's request body (the whole conversation) with "
    "ujson and the tracker store reads events with it (json.dumps and loads were 8 % of Rasa's time), and "
    "featurizes a message's counts without scikit-learn's `transform` (the three CountVectorsFeaturizers built "
    "and converted two sparse matrices each; same matrices, tested). What remains in Rasa is mostly the "
    "RulePolicy's matching (it "
    "turns the whole conversation into states for each prediction), the NLU pipeline (`scipy`, `nlu`), rebuilding "
    "the tracker from its events, and the action call for the answer (the whole tracker as JSON).",
    "- The gateway's time goes to round trips to PostgreSQL (SQLAlchemy in worker threads: store the update, find "
    "the conversation, read the pending updates, commit the answer with its outbox rows, claim and record each "
    "send) and to its two HTTP calls per message through httpx (Rasa, and the platform through "
    "python-telegram-bot), each a few milliseconds of Python. Removed since the first runs: a connection check "
    "before each unit of work (`pool_pre_ping`), a second read of the pending updates per drain, rebuilding the "
    "outbox's claim statements, a failed `import sniffio` that httpcore repeated on every request, and httpx's "
    "log line per request (two per message; the Bot API URL in it carried the bot token, now masked in every log). "
    "Removed after that: 40 worker threads shared 5 kept database connections, so the gateway opened and closed a "
    "PostgreSQL connection (a server process) about 5 times a second — 16 workers on 16 kept connections now; reads "
    "that need no snapshot run without BEGIN/ROLLBACK; an update is stored in one `INSERT … ON CONFLICT DO "
    "NOTHING`; and at most 16 messages are at Rasa at once (httpx's pool checks every connection it holds on each "
    "request: with 60 in flight that was a fifth of the gateway's time). Since then the calls to Rasa and to the "
    "Bot API go out on *lanes*, httpx clients of one kept connection each, so that each call's pool has one "
    "connection to look at (the pools' bookkeeping was still 11 % of the gateway's time with 16 and 32 "
    "connections); and a reply to a chat with nothing else pending is written already leased and handed straight "
    "to a sender after the commit, without the outbox worker's claim query and lease update.",
    "- Telegram allows a bot about 30 messages/s; here every answer was one platform call (see *platform calls/msg*), "
    "so that limit and the target coincide: the gateway's limiter lets 30 calls out in any second, spaced by at "
    "least 1/60 s, shared by the gateway replicas (until 5a404dd it let one out per 1/30 s, counted from when the "
    "previous one actually went out, so every late wake-up of a busy event loop lowered the rate below 30/s and "
    "answers queued behind it: 1.8 s from the stored answer to the platform in the 1-replica Telegram step). At an "
    "offered 30 msg/s, exactly the limit, the limiter still queues: messages come in bursts, and a burst's backlog "
    "drains only when fewer come in, so the Telegram steps' p95 includes that wait (*processed → handed to the "
    "platform* below); it is the platform's ceiling, not the bot's work.", "",
]


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value * 1000:.0f}"


@dataclass
class Run:
    command: str
    started: str
    machine: str
    model: str
    commit: str
    startup: dict[int, float] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    probe: Probe | None = None
    spy: dict[str, Counter[str]] = field(default_factory=dict)
    spy_error: str | None = None
    spy_step: StepResult | None = None
    load_before: str = ""
    load_after: str = ""
    elapsed: float = 0.0
    log_problems: dict[int, dict[str, int]] = field(default_factory=dict)


def steps_table(steps: list[StepResult]) -> list[str]:
    lines = ["| replicas | channel | citizens | load | sent | answered | msg/s | kept msg/s | p50 ms | p95 ms | p99 ms "
             "| p95 last part ms | platform calls/msg | retried calls | refused | unavailable answers | lost "
             "| duplicated |",
             "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in steps:
        t = s.tally
        calls = f"{t.sends / t.answered:.2f}" if s.channel == "telegram" and t.answered else "–"
        lines.append(
            f"| {s.replicas} | {s.channel} | {s.load.citizens} | {s.mode} | {t.sent} | {t.answered} "
            f"| {s.rate:.1f} | {s.kept_rate:.1f} | {ms(s.latency(50))} | {ms(s.latency(95))} | {ms(s.latency(99))} "
            f"| {ms(s.latency(95, last=True))} | {calls} | {t.retried} | {t.refused} | {t.unavailable} | {t.lost} "
            f"| {t.duplicated} |")
    return lines


def verdict(step: StepResult) -> str:
    p95 = step.latency(95)
    kept = step.kept_rate
    rate_ok = round(kept, 1) >= TARGET_RATE
    p95_ok = p95 is not None and p95 <= TARGET_P95
    clean = step.tally.lost == 0 and step.tally.duplicated == 0
    parts = [f"kept {kept:.1f} msg/s while sending ({'met' if rate_ok else f'missed by {TARGET_RATE - kept:.1f} msg/s'}"
             f"; {step.rate:.1f} msg/s until the last answer)",
             f"p95 {ms(p95)} ms ({'met' if p95_ok else 'missed by ' + ms((p95 or 0) - TARGET_P95) + ' ms'})",
             f"lost {step.tally.lost}, duplicated {step.tally.duplicated} ({'met' if clean else 'NOT met'})"]
    ok = rate_ok and p95_ok and clean
    return f"**{'MET' if ok else 'NOT MET'}** — " + "; ".join(parts)


def stages_table(steps: list[StepResult]) -> list[str]:
    lines = ["| replicas | channel | load | webhook → stored (median / p95 ms) | stored → processed: lock, Rasa, "
             "actions, commit | processed → handed to the platform | webhook → processed: the bot's own part |",
             "|---:|---|---|---|---|---|---|"]
    for s in steps:
        cells = []
        for key in ("intake", "processing", "handover", "ready"):
            values = sorted(s.stages.get(key, []))
            cells.append(f"{ms(median(values))} / {ms(percentile(values, 95))}")
        lines.append(f"| {s.replicas} | {s.channel} | {s.load.citizens} citizens, {s.mode} | " + " | ".join(cells)
                     + " |")
    return lines


def cpu_table(steps: list[StepResult]) -> list[str]:
    names = ["gateway", "rasa", "actions", "notify", "postgres", "redis", "lb", "bench"]
    lines = ["| replicas | channel | load | " + " | ".join(names) + " | total CPU ms/msg | msg/s the 2 cores allow "
             "| the stack's share of 2 cores | machine busy (everything) |",
             "|---:|---|---|" + "---:|" * (len(names) + 4)]
    for s in steps:
        n = max(1, len(s.answered))
        total = sum(s.cpu.get(k, 0.0) for k in names)
        whole = s.cpu.get("machine total", 0.0)
        share = total / whole * 100 if whole else 0.0
        busy = s.cpu.get("machine busy", 0.0) / whole * 100 if whole else 0.0
        lines.append(f"| {s.replicas} | {s.channel} | {s.load.citizens} citizens, {s.mode} | "
                     + " | ".join(f"{s.cpu.get(k, 0.0) / n * 1000:.0f}" for k in names)
                     + f" | {total / n * 1000:.0f} | {capacity(s):.0f} | {share:.0f} % | {busy:.0f} % |")
    return lines


def capacity(step: StepResult) -> float:
    """Messages/s the machine's cores would allow at this step's CPU cost per message, were they all ours."""
    names = ["gateway", "rasa", "actions", "postgres", "redis", "lb"]
    per_message = sum(step.cpu.get(k, 0.0) for k in names) / max(1, len(step.answered))
    return (os.cpu_count() or 2) / per_message if per_message else 0.0


def why(step: StepResult) -> str:
    """What the CPU figures say about a missed target."""
    n = max(1, len(step.answered))
    wall = max(step.seconds + step.drain, 1e-9)
    stack = sum(step.cpu.get(k, 0.0) for k in ("gateway", "rasa", "actions", "postgres", "redis", "lb"))
    whole = step.cpu.get("machine total", 0.0)
    busy = step.cpu.get("machine busy", 0.0) / whole * 100 if whole else 0.0
    share = stack / whole * 100 if whole else 0.0
    rasa_core = step.cpu.get("rasa", 0.0) / wall / step.replicas * 100
    rasa, gateway = step.cpu.get("rasa", 0.0) / n * 1000, step.cpu.get("gateway", 0.0) / n * 1000
    text = (f"the stack used {stack / n * 1000:.0f} ms of CPU per message (Rasa {rasa:.0f}, gateway {gateway:.0f}), "
            f"so {os.cpu_count() or 2} cores allow at most "
            f"{capacity(step):.0f} msg/s; the machine was {busy:.0f} % busy, {share:.0f} % for the stack and the rest "
            f"for other work; each Rasa server's event loop (one core at most) was {rasa_core:.0f} % busy")
    text += " — saturated" if rasa_core >= 80 else ""
    handover = sorted(step.stages.get("handover", []))
    ready = sorted(step.stages.get("ready", []))
    if step.channel == "telegram" and handover:
        text += (f"; from the stored answer to the platform (the outbox, which keeps under Telegram's limit of "
                 f"{TARGET_RATE:.0f} messages in any second per bot) took {ms(median(handover))} ms at the median, "
                 f"{ms(percentile(handover, 95))} ms at p95: offered {TARGET_RATE:.0f} msg/s, exactly that limit, a "
                 "burst of messages leaves a queue that the limit lets drain only when fewer come in")
        if ready:
            p95 = percentile(ready, 95) or 0.0
            text += (f"; the bot's own part, from webhook received to the reply committed for the platform, took "
                     f"{ms(median(ready))} ms at the median, {ms(p95)} ms at p95 "
                     f"({'within' if p95 <= TARGET_P95 else 'over'} the {TARGET_P95 * 1000:.0f} ms)")
    return text


def render(run: Run) -> str:
    out = ["# Benchmark: simulated citizens against the real stack", "",
           f"Run {run.started} with `{run.command}` ({run.elapsed / 60:.1f} min), commit `{run.commit}`, "
           f"model `{run.model}`.", f"Machine: {run.machine}; load average before {run.load_before}, after "
           f"{run.load_after} (other work on the machine makes every figure noisy).", ""]
    singles = [s for s in run.steps if s.replicas == 1 and s.load.pace is not None]
    out += ["## Verdict", "",
            f"Targets with one replica of each service: ≥ {TARGET_RATE:.0f} citizen messages/s sustained with p95 "
            f"≤ {TARGET_P95 * 1000:.0f} ms from webhook received to reply handed to the platform; zero lost, zero "
            "duplicated. Measured on the steady-rate step of each channel:", ""]
    for s in singles:
        out.append(f"- {s.channel}, {s.mode}, {s.load.citizens} citizens for {s.load.seconds:.0f} s: {verdict(s)}")
        out.append(f"  - why: {why(s)}.")
    others = [s for s in run.steps if s.replicas > 1 and s.load.pace is not None]
    for s in others:
        out.append(f"- (for comparison) {s.replicas} replicas, {s.channel}, {s.mode}: {verdict(s)}")
        out.append(f"  - why: {why(s)}.")
    lost = sum(s.tally.lost for s in run.steps)
    dup = sum(s.tally.duplicated for s in run.steps)
    out += ["", f"Over every step of the run: {lost} lost and {dup} duplicated messages.", ""]
    out += ["## Throughput and latency", "",
            "Latency: from the moment the citizen's client sent the message (the webhook call, or the web chat "
            "POST) to the first reply handed to the platform (the fake Bot API received `sendMessage`) or returned "
            "to the page; *last part* is the last message of a multi-part answer. msg/s: citizen messages "
            "answered, divided by the time from the first message to the last answer (the tail included); *kept*: "
            "divided by the sending time only, the rate the stack kept up with while the load ran (a citizen waits for "
            "the previous answer, so a stack that falls behind stretches the sending time). "
            "*Closed* steps: each citizen waits for the answer, thinks, writes again; *paced*: each citizen "
            "also keeps a schedule, so the crowd offers a steady rate.", ""]
    out += steps_table(run.steps)
    out += ["", "Start-up until every replica answered: "
            + ", ".join(f"{r} replica(s) {s:.0f} s" for r, s in sorted(run.startup.items())) + ".", ""]
    out += ["## Where the time goes", "", "### Per message, from the gateway's own timestamps", "",
            "`inbound_updates.received_at` (stored, before the 200) and `processed_at` (the answer and its outbox "
            "rows committed), against the bench's send time and the fake platform's arrival time:", ""]
    out += stages_table([s for s in run.steps if s.stages.get("processing")])
    out += ["", "### CPU per answered message, by process (from /proc)", ""]
    out += cpu_table(run.steps)
    if run.probe:
        p = run.probe
        nlu, rasa, gw = median_ms(p.nlu), median_ms(p.rasa), median_ms(p.gateway)
        out += ["", "### One message at a time on the idle stack (medians)", "",
                "| hop | median ms |", "|---|---:|",
                f"| Rasa NLU alone (`/model/parse`) | {nlu:.0f} |",
                f"| Rasa REST channel: NLU + policies + action server | {rasa:.0f} |",
                f"| … of which dialogue policies + action server (difference) | {rasa - nlu:.0f} |",
                f"| gateway web chat API end to end (intake, lock, database, Rasa) | {gw:.0f} |",
                f"| … of which the gateway itself (difference) | {gw - rasa:.0f} |", ""]
    if run.spy:
        step = run.spy_step
        out += ["### py-spy samples under load, by package of the innermost frame (self time)", "",
                f"Sampled at 50 Hz while {step.load.citizens if step else '?'} web chat citizens talked "
                f"({step.mode if step else ''}); the step's own figures are above the profiler's cost and not "
                "in the tables.", ""]
        for name, counts in run.spy.items():
            total = sum(counts.values()) or 1
            busy = {pkg: n for pkg, n in counts.items() if not pkg.startswith("[")}
            waits = ", ".join(f"{pkg} {n / total * 100:.0f} %" for pkg, n in counts.most_common() if pkg[0] == "[")
            top = ", ".join(f"{pkg} {n / (sum(busy.values()) or 1) * 100:.0f} %"
                            for pkg, n in sorted(busy.items(), key=lambda kv: -kv[1])[:8])
            out.append(f"- **{name}** ({total} samples; {waits or 'no waiting frames'}) — of the working samples: "
                       f"{top}")
        out.append("")
    out += READING
    if run.spy_error:
        out += [f"py-spy: {run.spy_error}", ""]
    for replicas, problems in sorted(run.log_problems.items()):
        worst = sorted(problems.items(), key=lambda kv: -kv[1])[:10]
        out += [f"## Warnings and errors the stack logged ({replicas} replica(s), start-up included)", ""]
        out += [f"- {n} × `{line}`" for line, n in worst] or ["- none"]
        out.append("")
    notes = [n for s in run.steps for n in s.tally.notes]
    if notes:
        out += ["## Notes from the accounting", ""] + [f"- {n}" for n in notes[:30]]
        if len(notes) > 30:
            out.append(f"- … and {len(notes) - 30} more")
        out.append("")
    return "\n".join(out)
