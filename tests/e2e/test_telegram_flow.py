"""A citizen on Telegram holds the web chat's conversation: real Rasa, real actions, fake Bot API, real PTB client."""

from __future__ import annotations

from itertools import count

import httpx
import pytest
from sqlalchemy import Engine

from tests.bot.helpers import TELEGRAM_SECRET
from tests.e2e.conftest import Platforms, Stack
from tests.e2e.platforms import settle
from tests.fakes.telegram import Call, callback_update, location_update, sticker_update, text_update

pytestmark = pytest.mark.e2e
update_ids = count(1)


class Citizen:
    def __init__(self, stack: Stack, platforms: Platforms, engine: Engine, chat_id: int) -> None:
        self.stack, self.telegram, self.engine, self.chat_id = stack, platforms.telegram, engine, chat_id

    def send(self, update: dict[str, object]) -> list[Call]:
        """Deliver ``update`` like Telegram does and return the messages the bot sent back."""
        before = len(self.telegram.sent(self.chat_id))
        resp = httpx.post(f"{self.stack.url}/webhooks/telegram", json=update, timeout=10,
                          headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET})
        assert resp.status_code == 200, resp.text
        settle(self.engine, lambda: len(self.telegram.sent(self.chat_id)) > before)
        return self.telegram.sent(self.chat_id)[before:]

    def say(self, text: str) -> list[Call]:
        return self.send(text_update(next(update_ids), self.chat_id, text))

    def press(self, message: Call, title: str) -> list[Call]:
        return self.send(callback_update(next(update_ids), self.chat_id, message, title))


def text_of(replies: list[Call]) -> str:
    return "\n".join(r.text or "" for r in replies)


def test_a_telegram_conversation(stack: Stack, platforms: Platforms, stack_engine: Engine) -> None:
    citizen = Citizen(stack, platforms, stack_engine, 5550001)
    welcome = citizen.say("/start")
    assert (welcome[0].text or "").startswith("Xin chào anh/chị!")
    assert [b["text"] for b in welcome[-1].buttons] == ["Tra cứu thủ tục", "Tra cứu hồ sơ", "Bưu cục gần nhất",
                                                        "Gặp nhân viên"]

    answer = citizen.say("làm giấy khai sinh cần giấy tờ gì")
    assert text_of(answer).startswith("Hồ sơ đăng ký khai sinh gồm:")
    assert "Nguồn:" in text_of(answer)
    with_buttons = next(r for r in answer if r.buttons)
    fee = citizen.press(with_buttons, "Lệ phí")  # an inline keyboard button
    assert "khai sinh" in text_of(fee)
    assert platforms.telegram.answered_callbacks()  # the button's spinner was stopped

    again = citizen.say("thế nộp ở đâu")  # no procedure named: the bot remembers it
    assert "khai sinh" in text_of(again)

    nearest = citizen.send(location_update(next(update_ids), citizen.chat_id, 21.0245, 105.8530))
    assert text_of(nearest).startswith("Các bưu điện gần anh/chị nhất:")
    assert "Bưu điện Trung tâm Hoàn Kiếm" in text_of(nearest)


def test_a_sticker_gets_asked_to_type(stack: Stack, platforms: Platforms, stack_engine: Engine) -> None:
    citizen = Citizen(stack, platforms, stack_engine, 5550002)
    (reply,) = citizen.send(sticker_update(next(update_ids), citizen.chat_id))
    assert "gõ câu hỏi bằng chữ" in (reply.text or "")
