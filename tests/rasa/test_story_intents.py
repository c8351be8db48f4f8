"""Every citizen message in tests/test_stories.yml is understood as the story says by the trained model.

`rasa test core` (make test-stories) checks the dialogue with the stories' own intent labels; this test
checks the other half: that the model reads the stories' texts as those intents (and entities).
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTITY = re.compile(r"\[([^\]]+)\]\((\w+)\)")


def story_turns() -> list[tuple[str, str, list[str]]]:
    data = yaml.safe_load((ROOT / "tests" / "test_stories.yml").read_text(encoding="utf-8"))
    turns = []
    for story in data["stories"]:
        for step in story["steps"]:
            if "user" in step:
                raw = step["user"].strip()
                entities = [name for _, name in ENTITY.findall(raw)]
                turns.append((ENTITY.sub(r"\1", raw), step["intent"], entities))
    return turns


@pytest.fixture(scope="module")
def agent() -> Any:
    from rasa.core.agent import Agent

    fingerprint = ROOT / "models" / "fingerprint.json"
    if not fingerprint.exists():
        pytest.fail("no trained model: run `make model` first (make test does)")
    return Agent.load(str(ROOT / "models" / json.loads(fingerprint.read_text())["model"]))


def test_story_messages_parse_to_their_intents(agent: Any) -> None:
    wrong = []
    for text, intent, entities in story_turns():
        parsed = asyncio.run(agent.parse_message(text))
        got = parsed["intent"]["name"]
        got_entities = {e["entity"] for e in parsed.get("entities", [])}
        if got != intent or not set(entities) <= got_entities:
            wrong.append(f"{text!r}: expected {intent} {entities}, got {got} {sorted(got_entities)}")
    assert wrong == []
