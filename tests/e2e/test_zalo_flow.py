"""A citizen on Zalo holds the web chat's conversation: real Rasa, real actions, fake Zalo OpenAPI and OAuth."""

from __future__ import annotations

from itertools import count

import httpx
import pytest
from sqlalchemy import Engine

from tests.e2e.conftest import Platforms, Stack
from tests.e2e.platforms import settle
from tests.fakes import zalo as fake

pytestmark = pytest.mark.e2e
msg_ids = count(1)


class Citizen:
    def __init__(self, stack: Stack, platforms: Platforms, engine: Engine, user_id: str) -> None:
        self.stack, self.zalo, self.engine, self.user_id = stack, platforms.zalo, engine, user_id

    def send(self, event: dict[str, object]) -> str:
        """Deliver ``event`` signed like Zalo does; the texts the OA sent back, joined."""
        before = len(self.zalo.sent(self.user_id))
        body, headers = fake.signed(event)
        resp = httpx.post(f"{self.stack.url}/webhooks/zalo", content=body, headers=headers, timeout=10)
        assert resp.status_code == 200, resp.text
        settle(self.engine, lambda: len(self.zalo.sent(self.user_id)) > before)
        return "\n".join(self.zalo.texts(self.user_id)[before:])

    def say(self, text: str) -> str:
        return self.send(fake.text_event(self.user_id, text, f"e2e{next(msg_ids)}"))

    def choose(self, answer: str, title: str) -> str:
        """Answer a numbered list by the number of the option called ``title``."""
        number = next(line.split(".", 1)[0] for line in answer.splitlines() if line.endswith(f". {title}"))
        return self.say(number)


def test_a_zalo_conversation(stack: Stack, platforms: Platforms, stack_engine: Engine) -> None:
    citizen = Citizen(stack, platforms, stack_engine, "8499990000000001")
    welcome = citizen.send(fake.follow_event(citizen.user_id))
    assert welcome.startswith("Xin chào anh/chị!")
    assert "4. Gặp nhân viên" in welcome

    answer = citizen.say("lam giay khai sinh can giay to gi")
    assert answer.startswith("Hồ sơ đăng ký khai sinh gồm:")
    assert "Nguồn:" in answer
    fee = citizen.choose(answer, "Lệ phí")  # a numbered option stands for the button
    assert "khai sinh" in fee

    nearest = citizen.send(fake.location_event(citizen.user_id, 21.0245, 105.8530, f"e2e{next(msg_ids)}"))
    assert nearest.startswith("Các bưu điện gần anh/chị nhất:")


def test_an_expired_token_is_refreshed_on_the_way(stack: Stack, platforms: Platforms, stack_engine: Engine) -> None:
    citizen = Citizen(stack, platforms, stack_engine, "8499990000000002")
    refreshes = platforms.zalo.refreshes
    platforms.zalo.expire_access_token()
    assert citizen.say("xin chào").startswith("Xin chào anh/chị!")
    assert platforms.zalo.refreshes == refreshes + 1
