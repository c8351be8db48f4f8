"""Fuzzing with hypothesis: the normalizer and the webhook parsers take anything without crashing or hanging.

The normalizer's linguistic properties are tested in tests/nlu (under Rasa's Python); here it gets hostile input:
every Unicode category (lone surrogates, controls, bidi overrides), long runs meant to make regular expressions
backtrack, and it must return clean text quickly. The parsers get arbitrary JSON: only their own "bad input"
errors may escape, and over HTTP only 2xx/4xx answers.
"""

from __future__ import annotations

import json
import time
import unicodedata
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse
from telegram import Update

from bot.channels import telegram as tg
from bot.channels import zalo
from bot.channels.http import json_object
from nlu.normalize import normalize, normalize_with_offsets
from tests.bot.helpers import TELEGRAM_SECRET, Channels
from tests.fakes import zalo as zalo_fake

ANY_CHAR = st.characters(codec=None, categories=None)  # every code point, surrogates and controls included
HOSTILE = st.text(ANY_CHAR, max_size=300)
PIECES = ["000.00.04.H51-", "0901", "@", "http://", "a" * 50, ".", "?", "!!", " ", "\u200b", "\u202e", "k ", "ko ",
          "đ", "̀", "0" * 30, "-"]

json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
                      st.text(max_size=20))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                              st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                          max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(text=HOSTILE)
def test_normalize_takes_any_text_and_returns_clean_text(text: str) -> None:
    out = normalize(text)
    assert isinstance(out, str)
    assert not any(unicodedata.category(c) in {"Cc", "Cf", "Cs"} for c in out)
    result = normalize_with_offsets(text)
    assert len(result.starts) == len(result.text) == len(result.ends)
    assert all(0 <= s <= e <= len(text) for s, e in zip(result.starts, result.ends, strict=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), min_size=50, max_size=400))
def test_normalize_does_not_backtrack_on_long_hostile_input(pieces: list[str]) -> None:
    text = "".join(pieces) * 5
    started = time.perf_counter()
    normalize(text)
    assert time.perf_counter() - started < 2.0, len(text)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["event_name", "timestamp", "sender", "follower", "message", "app_id"]),
                       json_value, max_size=6),
       st.sampled_from(sorted(zalo.MEDIA_EVENTS | zalo.IGNORED_EVENTS | {"user_send_text", "user_send_location",
                                                                          "follow", "x"})))
def test_zalo_classify_raises_only_bad_event(event: dict[str, Any], name: str) -> None:
    event.setdefault("event_name", name)
    try:
        result = zalo.classify(event, 2000)
    except zalo.BadEvent:
        return
    assert result is None or (isinstance(result[0], str) and result[1].channel == "zalo")


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries({"update_id": st.integers(0, 2**52)},
                             optional={"message": json_value, "callback_query": json_value,
                                       "edited_message": json_value}))
def test_telegram_classify_raises_only_unsupported_update(data: dict[str, Any]) -> None:
    try:
        update = Update.de_json(data, None)
    except Exception:  # PTB refuses the shape: the webhook answers 400 before classify is called
        return
    try:
        tg.classify(update, 2000)
    except tg.UnsupportedUpdate:
        pass


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200), json_value.map(lambda v: json.dumps(v).encode())))
def test_json_object_never_raises(body: bytes) -> None:
    result = json_object(body)
    assert isinstance(result, dict | JSONResponse)


FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(body=st.one_of(json_value.map(lambda v: json.dumps(v).encode()),
                      st.fixed_dictionaries({"update_id": st.integers(1, 2**52)},
                                            optional={"message": json_value, "callback_query": json_value})
                      .map(lambda v: json.dumps(v).encode())))
async def test_the_telegram_webhook_answers_anything_with_2xx_or_4xx(channels: Channels, body: bytes) -> None:
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{channels.url}/webhooks/telegram", content=body,
                                 headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
    assert resp.status_code < 500, resp.text[:200]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(event=st.dictionaries(st.sampled_from(["event_name", "sender", "follower", "message", "app_id"]),
                             json_value, max_size=5),
       name=st.sampled_from(["user_send_text", "user_send_location", "user_send_image", "follow", "unfollow"]))
async def test_the_zalo_webhook_answers_signed_anything_with_2xx_or_4xx(channels: Channels, event: dict[str, Any],
                                                                        name: str) -> None:
    event = {"event_name": name, **event, "timestamp": "1700000000000"}
    body, headers = zalo_fake.signed(event)
    async with httpx.AsyncClient() as client:
        resp = await client.post(f"{channels.url}/webhooks/zalo", content=body, headers=headers)
    assert resp.status_code < 500, resp.text[:200]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@FUZZ
@given(body=st.dictionaries(st.sampled_from(["text", "payload", "location", "client_id"]), json_value, max_size=4))
async def test_the_web_chat_answers_anything_with_2xx_or_4xx(channels: Channels, body: dict[str, Any]) -> None:
    async with httpx.AsyncClient(base_url=channels.url) as client:
        token = (await client.post("/api/webchat/sessions")).json()["session"]
        resp = await client.post("/api/webchat/messages", json=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code < 500, resp.text[:200]
