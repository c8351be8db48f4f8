"""``dvcbot content check``: every check an editor's change must pass, each problem as ``file:line: message``.

It runs ``rasa data validate`` (in the Rasa virtualenv, in the background), the catalog and post-office checks,
and cross-checks between the catalog, the NLU data, the rules/stories, the domain, the registered custom actions
and the abbreviations dictionary.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from actions.catalog.directory import read_directory
from actions.catalog.schema import read_catalog
from actions.catalog.yamlsource import SourceError, YamlDoc, read_yaml
from dvcbot import PROJECT_ROOT
from nlu.gazetteer import PROCEDURE, CatalogError, build_gazetteer
from nlu.normalize import LexiconError, iter_words, load_abbreviations, normalize, strip_diacritics, syllables

RASA_BIN = PROJECT_ROOT / ".venv-rasa" / "bin" / "rasa"
RASA_TIMEOUT = 180.0

# Rasa 3.6: rasa.shared.core.constants.DEFAULT_ACTION_NAMES and DEFAULT_INTENTS (Rasa is not importable here).
DEFAULT_ACTIONS = frozenset({
    "action_listen", "action_restart", "action_session_start", "action_default_fallback",
    "action_deactivate_loop", "action_revert_fallback_events", "action_default_ask_affirmation",
    "action_default_ask_rephrase", "action_two_stage_fallback", "action_unlikely_intent", "action_back",
    "...", "action_extract_slots",
})
DEFAULT_INTENTS = frozenset({"restart", "back", "out_of_scope", "session_start", "nlu_fallback"})

# rasa.shared.nlu.training_data.entities_parser.ENTITY_REGEX
ENTITY_RE = re.compile(
    r"\[(?P<entity_text>[^\]]+?)\](\((?P<entity>[^:)]+?)(?:\:(?P<value>[^)]+))?\)|\{(?P<entity_dict>[^}]+?)\}"
    r"|\[(?P<list_entity_dicts>.*?)\])"
)
SINGLE_ENTITY_DICT = re.compile(r"{(?P<entity_dict>[^}]+?)\}")


@dataclass(frozen=True, order=True)
class Problem:
    """One finding; warnings are shown but do not fail the check."""

    file: str
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {'warning: ' if self.warning else ''}{self.message}"


@dataclass
class ContentPaths:
    """Where each kind of content lives (tests point these at a temporary copy)."""

    root: Path
    catalog_dir: Path
    post_offices: Path
    nlu: Path
    heldout: Path
    rules: Path
    stories: Path
    domain: Path
    abbreviations: Path
    config: Path
    actions_package: str = "actions"

    @classmethod
    def at(cls, root: Path) -> ContentPaths:
        data = root / "data"
        return cls(root, data / "catalog", data / "post_offices.yml", data / "nlu", data / "heldout",
                   data / "rules", data / "stories", root / "domain", data / "lexicon" / "abbreviations.yml",
                   root / "config.yml")

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path.is_relative_to(self.root) else str(path)


@dataclass
class Annotation:
    entity: str
    text: str
    value: str | None  # as written; None when the annotation gives no value


@dataclass
class Example:
    file: str
    line: int
    intent: str
    text: str  # without the annotations
    annotations: list[Annotation]
    heldout: bool = False


@dataclass
class NluData:
    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)  # lower-case text -> value
    synonym_values: dict[str, tuple[str, int]] = field(default_factory=dict)  # value -> (file, line)


@dataclass
class RasaValidation:
    """What ``rasa data validate`` said, reduced to what matters to an editor."""

    returncode: int
    errors: list[str]
    warnings: list[str]
    ignored: int
    seconds: float = 0.0


@dataclass
class CheckResult:
    problems: list[Problem]
    counts: dict[str, int]
    rasa: RasaValidation | None = None

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if not p.warning]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.warning]

    @property
    def ok(self) -> bool:
        return not self.errors and (self.rasa is None or not self.rasa.errors)


# ---------------------------------------------------------------------------------------------------------------
# Reading NLU YAML with line numbers


def _files(folder: Path) -> list[Path]:
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())


def _mapping(node: yaml.Node) -> dict[str, yaml.Node]:
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, yaml.ScalarNode)}


def _first_content_line(node: yaml.ScalarNode) -> int:
    """1-based line of a scalar's first content line (a block scalar starts below its ``|``)."""
    return node.start_mark.line + (2 if node.style in ("|", ">") else 1)


def parse_annotations(example: str) -> tuple[str, list[Annotation], list[str]]:
    """Plain text, entity annotations and annotation problems of one Rasa training example."""
    annotations: list[Annotation] = []
    problems: list[str] = []
    for match in ENTITY_RE.finditer(example):
        text = match.group("entity_text")
        if match.group("entity"):
            annotations.append(Annotation(match.group("entity").strip(), text, match.group("value")))
            continue
        dicts = [match.group("entity_dict")] if match.group("entity_dict") else \
            SINGLE_ENTITY_DICT.findall(match.group("list_entity_dicts") or "")
        for raw in dicts:
            try:
                attrs = json.loads("{" + raw + "}")
            except ValueError:
                problems.append(f"annotation {{{raw}}} of {text!r} is not valid JSON")
                continue
            if not isinstance(attrs, dict) or not isinstance(attrs.get("entity"), str):
                problems.append(f"annotation {{{raw}}} of {text!r} has no \"entity\"")
                continue
            value = attrs.get("value")
            annotations.append(Annotation(attrs["entity"], text, None if value is None else str(value)))
    plain = ENTITY_RE.sub(lambda m: m.group("entity_text"), example)
    return plain, annotations, problems


def read_nlu(paths: Iterable[Path], content: ContentPaths, heldout: bool = False) -> tuple[NluData, list[Problem]]:
    """Examples (with their line) and synonyms of Rasa NLU YAML files."""
    data = NluData()
    problems: list[Problem] = []
    for path in paths:
        name = content.rel(path)
        try:
            root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            problems.append(Problem(name, mark.line + 1 if mark else 1, f"YAML error: {exc.problem or exc}"))
            continue
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            problems.append(Problem(name, 1, f"cannot read file: {exc}"))
            continue
        items = _mapping(root).get("nlu") if root is not None else None
        if not isinstance(items, yaml.SequenceNode):
            continue
        for item in items.value:
            keys = _mapping(item)
            kind = next((k for k in ("intent", "synonym") if k in keys), None)
            if kind is None or not isinstance(keys[kind], yaml.ScalarNode):
                continue
            label = str(keys[kind].value)
            for line, raw in _example_lines(keys.get("examples"), name, problems):
                if kind == "synonym":
                    data.synonyms[raw.lower()] = label
                    data.synonym_values.setdefault(label, (name, line))
                    continue
                plain, annotations, bad = parse_annotations(raw)
                problems.extend(Problem(name, line, message) for message in bad)
                data.examples.append(Example(name, line, label, plain, annotations, heldout))
    return data, problems


def _example_lines(node: yaml.Node | None, file: str, problems: list[Problem]) -> Iterable[tuple[int, str]]:
    if isinstance(node, yaml.ScalarNode):
        first = _first_content_line(node)
        for k, line in enumerate(str(node.value).splitlines()):
            if not line.strip():
                continue
            if not line.startswith("-"):
                problems.append(Problem(file, first + k, f"example {line.strip()!r} does not start with '- ': "
                                                          "Rasa skips it"))
                continue
            yield first + k, line[1:].strip()
    elif isinstance(node, yaml.SequenceNode):
        for entry in node.value:
            text = _mapping(entry).get("text")
            if isinstance(text, yaml.ScalarNode) and str(text.value).strip():
                yield _first_content_line(text), str(text.value).strip()


# ---------------------------------------------------------------------------------------------------------------
# Checks


def check_abbreviations(content: ContentPaths) -> tuple[dict[str, str], list[Problem]]:
    """The dictionary (empty when broken) and its problems, from ``nlu.normalize.load_abbreviations``."""
    name = content.rel(content.abbreviations)
    if not content.abbreviations.exists():
        return {}, [Problem(name, 1, "abbreviations dictionary not found")]
    try:
        return load_abbreviations(str(content.abbreviations)), []
    except LexiconError as exc:
        problems = []
        for line in str(exc).splitlines():
            match = re.match(r"^(.*?):(\d+): (.*)$", line)
            if match:
                problems.append(Problem(name, int(match.group(2)), match.group(3)))
            else:
                problems.append(Problem(name, 1, line))
        return {}, problems
    except OSError as exc:
        return {}, [Problem(name, 1, f"cannot read file: {exc}")]


def example_key(text: str, abbreviations: dict[str, str]) -> str:
    """The form in which two examples count as the same sentence (case, accents, punctuation ignored)."""
    return " ".join(iter_words(strip_diacritics(normalize(text, abbreviations))))


def check_duplicates(examples: list[Example], abbreviations: dict[str, str]) -> list[Problem]:
    """An example under two intents confuses the model; a held-out example seen in training flatters it."""
    by_key: dict[str, list[Example]] = {}
    for ex in examples:
        by_key.setdefault(example_key(ex.text, abbreviations), []).append(ex)
    problems: list[Problem] = []
    for key, places in by_key.items():
        if not key:
            continue
        intents = {ex.intent for ex in places}
        for ex in places:
            other = next((o for o in places if o.intent != ex.intent), None)
            if other is not None:
                problems.append(Problem(ex.file, ex.line, f"example {ex.text!r} is under intent {ex.intent!r} here "
                                        f"and under {other.intent!r} in {other.file}:{other.line}"))
            elif ex.heldout and len(intents) == 1:
                seen = next((o for o in places if not o.heldout), None)
                if seen is not None:
                    problems.append(Problem(ex.file, ex.line, f"held-out example {ex.text!r} is also in the training "
                                            f"data ({seen.file}:{seen.line}); it makes the held-out score look "
                                            "better than it is", warning=True))
    return problems


def _effective_value(ann: Annotation, synonyms: dict[str, str]) -> str:
    value = ann.value if ann.value is not None else ann.text
    return synonyms.get(value.lower(), value)


def _suggest(value: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, sorted(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_procedure_values(training: NluData, heldout: NluData, known: set[str]) -> list[Problem]:
    """Every annotated ``procedure`` value must be a catalog procedure or group id."""
    problems: list[Problem] = []
    for ex in training.examples + heldout.examples:
        for ann in ex.annotations:
            if ann.entity != PROCEDURE:
                continue
            value = _effective_value(ann, training.synonyms)
            if value not in known:
                problems.append(Problem(ex.file, ex.line, f"procedure {value!r} (for {ann.text!r}) is not a "
                                        f"procedure or group id in data/catalog{_suggest(value, known)}"))
    return problems


def _catalog_lines(content: ContentPaths) -> dict[str, tuple[str, int, list[tuple[str, int]]]]:
    """id -> (file, line of the id, [(name, line)]) for procedures and groups, read leniently."""
    out: dict[str, tuple[str, int, list[tuple[str, int]]]] = {}
    for path in sorted(content.catalog_dir.glob("*.yml")):
        doc = read_yaml(path, content.root)
        if isinstance(doc, SourceError) or not isinstance(doc.data, dict):
            continue
        section = "groups" if path.name == "_groups.yml" else "procedures"
        for i, rec in enumerate(doc.data.get(section) or []):
            if not isinstance(rec, dict) or not isinstance(rec.get("id"), str):
                continue
            names: list[tuple[str, int]] = []
            keys = ["names"] if section == "groups" else ["name", "aliases"]
            for key in keys:
                value = rec.get(key)
                if isinstance(value, str):
                    names.append((value, doc.line_of((section, i, key))))
                elif isinstance(value, list):
                    names += [(v, doc.line_of((section, i, key, j))) for j, v in enumerate(value)
                              if isinstance(v, str)]
            out.setdefault(rec["id"], (doc.file, doc.line_of((section, i, "id")), names))
    return out


def check_reachable(
    content: ContentPaths, catalog: dict[str, tuple[str, int, list[tuple[str, int]]]], training: NluData,
    abbreviations: dict[str, str],
) -> list[Problem]:
    """Every catalog id is named by an NLU example or read from one of its own names by the entity extractor."""
    try:
        gazetteer, _ = build_gazetteer(content.catalog_dir, None, abbreviations)
    except CatalogError as exc:
        return [Problem(content.rel(content.catalog_dir), 1, f"cannot build the procedure gazetteer: {exc}")]
    annotated = {_effective_value(a, training.synonyms) for ex in training.examples for a in ex.annotations
                 if a.entity == PROCEDURE}
    annotated |= set(training.synonym_values)
    problems: list[Problem] = []
    for pid, (file, line, names) in catalog.items():
        reached = pid in annotated
        for name, name_line in names:
            tokens = [s.text for s in syllables(name, abbreviations)]
            matches = gazetteer.without_redundant_groups(gazetteer.match(tokens))
            whole = [m for m in matches if m.exact and (m.first, m.last) == (0, len(tokens))]
            if whole and whole[0].value == pid:
                reached = True
            elif whole:
                problems.append(Problem(file, name_line, f"{name!r} of {pid!r} is read as {whole[0].value!r}",
                                        warning=True))
        if not reached:
            problems.append(Problem(file, line, f"{pid!r} cannot be recognised: no example in data/nlu names it "
                                    "and none of its names or aliases is read as it"))
    return problems


def _domain(content: ContentPaths) -> tuple[dict[str, set[str]], dict[str, tuple[str, int]], list[Problem]]:
    """intents, responses, actions, forms of every domain file; where each action is listed."""
    found: dict[str, set[str]] = {"intents": set(), "responses": set(), "actions": set(), "forms": set()}
    listed: dict[str, tuple[str, int]] = {}
    problems: list[Problem] = []
    for path in _files(content.domain):
        doc = read_yaml(path, content.root)
        if isinstance(doc, SourceError):
            problems.append(Problem(doc.file, doc.line, doc.message))
            continue
        data = doc.data if isinstance(doc.data, dict) else {}
        for intent in data.get("intents") or []:
            found["intents"].add(next(iter(intent)) if isinstance(intent, dict) and intent else str(intent))
        found["responses"].update(str(k) for k in (data.get("responses") or {}))
        found["forms"].update(str(k) for k in (data.get("forms") or {}))
        for j, action in enumerate(data.get("actions") or []):
            name = next(iter(action)) if isinstance(action, dict) and action else str(action)
            found["actions"].add(name)
            listed.setdefault(name, (doc.file, doc.line_of(("actions", j))))
    return found, listed, problems


def registered_actions(package: str) -> tuple[set[str], str | None]:
    """Names of the custom actions the action server registers (``rasa_sdk --actions <package>``)."""
    import logging

    from rasa_sdk.executor import ActionExecutor

    executor = ActionExecutor()
    errors: list[str] = []

    class _Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                errors.append(record.getMessage())

    handler = _Catch()
    logger = logging.getLogger("rasa_sdk.executor")
    logger.addHandler(handler)
    try:
        executor.register_package(package)
    except Exception as exc:  # an action module that fails to import
        return set(executor.actions), f"cannot import the custom actions: {exc}"
    finally:
        logger.removeHandler(handler)
    return set(executor.actions), ("; ".join(errors) or None)


def check_dialogue(content: ContentPaths, registered: set[str]) -> list[Problem]:
    """Rules and stories use only intents, responses, actions and forms that exist."""
    domain, listed, problems = _domain(content)
    for name, (file, line) in sorted(listed.items()):
        if not name.startswith("utter_") and name not in registered and name not in DEFAULT_ACTIONS:
            problems.append(Problem(file, line, f"action {name!r} is listed in the domain but no custom action in "
                                    f"{content.actions_package}/ has that name"))
    for path in _files(content.rules) + _files(content.stories):
        doc = read_yaml(path, content.root)
        if isinstance(doc, SourceError):
            problems.append(Problem(doc.file, doc.line, doc.message))
            continue
        data = doc.data if isinstance(doc.data, dict) else {}
        for section in ("rules", "stories"):
            for i, block in enumerate(data.get(section) or []):
                if not isinstance(block, dict):
                    continue
                for part in ("condition", "steps"):
                    for j, step in enumerate(block.get(part) or []):
                        problems += _check_step(doc, (section, i, part, j), step, domain, registered)
    return problems


def _check_step(doc: YamlDoc, where: tuple[str | int, ...], step: Any, domain: dict[str, set[str]],
                registered: set[str]) -> list[Problem]:
    if not isinstance(step, dict):
        return []
    out: list[Problem] = []
    for k, alternative in enumerate(step.get("or") or []):
        out += _check_step(doc, (*where, "or", k), alternative, domain, registered)
    intent = step.get("intent")
    if isinstance(intent, str) and intent not in domain["intents"] and intent not in DEFAULT_INTENTS:
        out.append(Problem(doc.file, doc.line_of((*where, "intent")),
                           f"intent {intent!r} is not in the domain{_suggest(intent, domain['intents'])}"))
    loop = step.get("active_loop")
    if isinstance(loop, str) and loop not in domain["forms"]:
        out.append(Problem(doc.file, doc.line_of((*where, "active_loop")), f"form {loop!r} is not in the domain"))
    action = step.get("action")
    if not isinstance(action, str):
        return out
    line = doc.line_of((*where, "action"))
    if action.startswith("utter_"):
        if action not in domain["responses"]:
            out.append(Problem(doc.file, line, f"response {action!r} is not in the domain"
                                               f"{_suggest(action, domain['responses'])}"))
    elif action in DEFAULT_ACTIONS or action in domain["forms"]:
        pass
    elif action not in registered:
        out.append(Problem(doc.file, line, f"action {action!r} is neither a response nor a registered custom action"
                                           f"{_suggest(action, registered | domain['responses'])}"))
    elif action not in domain["actions"]:
        out.append(Problem(doc.file, line, f"action {action!r} is not listed under 'actions:' in the domain"))
    return out


# ---------------------------------------------------------------------------------------------------------------
# rasa data validate

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_WARNING_START = re.compile(r"^(?:\S+\.py:\d+: )?(\w+Warning): (.*)$")
_LOG_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (\w+)\s+\S+\s+- (.*)$")
# Responses that custom actions send (dispatcher.utter_message(response=...)) are never in a rule.
_IGNORED = [re.compile(r"The utterance '[^']+' is not used in any story or rule")]
# Rasa 3.6 exits 0 after these (they are "warnings" to it), but each one is a defect the bot would show.
_RASA_ERRORS = [re.compile(p) for p in (
    r"is used in the stories, but is not a valid utterance action",
    r"is used in your stories, but it is not listed in the domain",
    r"This intent is not listed in your domain",
    r"labeled with multiple different intents",
    r"block, but it is not listed in the domain",
    r"is not present in the domain slots",
    r"has a mapping condition for form",
    r"Found intent '[^']+' in stories which is not part of the domain",
    r"CONFLICT|conflict",
    r"Project validation completed with errors",
)]


def start_rasa_validate(content: ContentPaths) -> subprocess.Popen[str]:
    data = [content.rel(p) for p in (content.nlu, content.rules, content.stories) if p.exists()]
    cmd = [str(RASA_BIN), "data", "validate", "--domain", content.rel(content.domain), "--data", *data,
           "--config", content.rel(content.config)]
    env = {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2",
           "SQLALCHEMY_SILENCE_UBER_WARNING": "1", "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    return subprocess.Popen(cmd, cwd=content.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, encoding="utf-8", errors="replace")


def parse_rasa_output(output: str, returncode: int) -> RasaValidation:
    """Keep Rasa's user warnings, warnings and errors; drop library noise and unused-response notes."""
    records: list[list[str]] = []  # [kind, message]
    current: list[str] | None = None
    for raw in _ANSI.sub("", output).splitlines():
        line = raw.rstrip()
        warning = _WARNING_START.match(line)
        log = _LOG_START.match(line)
        if warning:
            current = [warning.group(1), warning.group(2)]
            records.append(current)
        elif log:
            current = [log.group(1), log.group(2)]
            records.append(current)
        elif line.startswith(("Project validation completed with errors", "YamlSyntaxException",
                              "InvalidDomain", "YamlValidationException", "rasa.shared.exceptions")):
            current = ["ERROR", line]
            records.append(current)
        elif current is not None and line and not line.startswith("  "):
            current[1] += "\n" + line
    errors: list[str] = []
    warnings: list[str] = []
    ignored = 0
    for kind, message in records:
        if kind not in ("UserWarning", "WARNING", "ERROR", "CRITICAL"):
            continue
        if any(p.search(message) for p in _IGNORED):
            ignored += 1
        elif kind in ("ERROR", "CRITICAL") or any(p.search(message) for p in _RASA_ERRORS):
            errors.append(message.strip())
        else:
            warnings.append(message.strip())
    if returncode != 0 and not errors:
        tail = [line for line in _ANSI.sub("", output).splitlines() if line.strip()][-5:]
        errors.append(f"rasa data validate exited with {returncode}: " + " / ".join(tail))
    return RasaValidation(returncode, errors, warnings, ignored)


def finish_rasa_validate(proc: subprocess.Popen[str], started: float) -> RasaValidation:
    try:
        output, _ = proc.communicate(timeout=RASA_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return RasaValidation(1, [f"rasa data validate did not finish in {RASA_TIMEOUT:.0f} s"], [], 0)
    result = parse_rasa_output(output, proc.returncode)
    result.seconds = time.monotonic() - started
    return result


# ---------------------------------------------------------------------------------------------------------------


def check_content(content: ContentPaths, rasa: bool = True) -> CheckResult:
    """Run every check on the content under ``content``; ``rasa=False`` skips ``rasa data validate``."""
    started = time.monotonic()
    proc = start_rasa_validate(content) if rasa and RASA_BIN.exists() else None
    problems: list[Problem] = []
    try:
        catalog, errors = read_catalog(content.catalog_dir, content.root)
        offices, office_errors = read_directory(content.post_offices, content.root)
        problems += [Problem(e.file, e.line, e.message) for e in [*errors, *office_errors]]
        abbreviations, abbr_problems = check_abbreviations(content)
        problems += abbr_problems
        training, nlu_problems = read_nlu(_files(content.nlu), content)
        heldout, heldout_problems = read_nlu(_files(content.heldout), content, heldout=True)
        problems += nlu_problems + heldout_problems
        ids = _catalog_lines(content)
        known = set(ids) | set(catalog.procedures) | set(catalog.groups)
        problems += check_procedure_values(training, heldout, known)
        problems += check_duplicates(training.examples + heldout.examples, abbreviations)
        problems += check_reachable(content, ids, training, abbreviations)
        registered, import_error = registered_actions(content.actions_package)
        if import_error:
            problems.append(Problem(content.actions_package + "/", 1, import_error))
        problems += check_dialogue(content, registered)
    except BaseException:
        if proc is not None:
            proc.kill()
            proc.wait()
        raise
    counts = {
        "procedures": len(catalog.procedures), "groups": len(catalog.groups), "post_offices": len(offices),
        "examples": len(training.examples), "intents": len({e.intent for e in training.examples}),
        "heldout": len(heldout.examples),
    }
    result = CheckResult(sorted(set(problems)), counts)
    if rasa:
        result.rasa = (finish_rasa_validate(proc, started) if proc is not None else
                       RasaValidation(1, [f"{RASA_BIN} not found: run `make setup` first"], [], 0))
    return result


def report(result: CheckResult, out: Callable[[str], None] = print) -> int:
    """Print the findings; return the exit code (1 when there is an error)."""
    for problem in result.problems:
        out(str(problem))
    if result.rasa is not None:
        for message in result.rasa.errors:
            out(f"rasa data validate: error: {message}")
        for message in result.rasa.warnings:
            out(f"rasa data validate: warning: {message}")
    c = result.counts
    summary = (f"{c['procedures']} procedures, {c['groups']} groups, {c['post_offices']} post offices, "
               f"{c['examples']} examples in {c['intents']} intents, {c['heldout']} held-out examples")
    if result.rasa is not None:
        summary += f"; rasa data validate took {result.rasa.seconds:.0f} s"
        if result.rasa.ignored:
            summary += f" ({result.rasa.ignored} notes about responses used only by custom actions left out)"
    n_err = len(result.errors) + (len(result.rasa.errors) if result.rasa else 0)
    n_warn = len(result.warnings) + (len(result.rasa.warnings) if result.rasa else 0)
    if n_err:
        out(f"Content check FAILED: {n_err} error(s), {n_warn} warning(s). Fix each file:line above, then run "
            "`make check` again.")
        return 1
    out(f"Content OK ({n_warn} warning(s)): {summary}.")
    return 0


def main(rasa: bool = True) -> int:
    """``dvcbot content check``."""
    from dvcbot.settings import get_settings

    settings = get_settings()
    content = ContentPaths.at(settings.project_dir)
    content.catalog_dir = settings.catalog_dir
    content.post_offices = settings.post_offices_file
    print("Checking the content" + (" (rasa data validate runs alongside, about 10 s)" if rasa else "") + " ...",
          flush=True)
    result = check_content(content, rasa=rasa)
    return report(result, lambda line: print(line, flush=True))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
