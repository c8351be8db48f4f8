"""What the simulated citizens say: multi-turn flows as people really type them (accented, unaccented, teencode).

A flow is a list of steps. ``Say`` types a text; ``Press`` presses a button of the bot's last reply (the first
title of ``prefer`` that is there, else the first button that does not call a person: the benchmark measures the
bot, and a handoff would take the conversation away from it); ``Share`` shares a location. Every flow stays in
the bot's domain and never asks for a person, so every message is expected to get a bot answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

# buttons a simulated citizen never presses: they leave the bot (handoff) or end a look-up
AVOID = ("Gặp nhân viên", "Dừng tra cứu", "Dừng thông báo")


@dataclass(frozen=True)
class Say:
    text: str


@dataclass(frozen=True)
class Press:
    prefer: tuple[str, ...] = ()
    fallback: str = "cảm ơn"  # typed instead when the last reply had no button to press


@dataclass(frozen=True)
class Share:
    lat: float
    lon: float


Step = Say | Press | Share


@dataclass(frozen=True)
class Flow:
    name: str
    kind: str  # procedure | button | post_office | chitchat (for the per-kind latency table)
    steps: tuple[Step, ...]


def flow(name: str, kind: str, *steps: Step | str) -> Flow:
    return Flow(name, kind, tuple(Say(s) if isinstance(s, str) else s for s in steps))


FLOWS: tuple[Flow, ...] = (
    flow("khai sinh, follow-ups", "procedure",
         "làm giấy khai sinh cho con cần giấy tờ gì ạ", Press(("Lệ phí", "Cần giấy tờ gì?")),
         "thế nộp ở đâu", "cảm ơn nhé"),
    flow("khai sinh, unaccented", "procedure",
         "lam giay khai sinh can giay to gi", "le phi bao nhieu", "nop o dau vay"),
    flow("căn cước, teencode", "procedure",
         "cho e hỏi lm cccd cho con 14 tuổi cần j ạ", "mất bao lâu thì có ạ", "ok cảm ơn ad"),
    flow("hộ chiếu, unaccented", "procedure",
         "lam ho chieu can nhung giay to gi", "co lam online duoc khong", "le phi het bao nhieu tien"),
    flow("thường trú, long message", "procedure",
         "Chào bạn, tôi mới cưới vợ, giờ muốn đăng ký thường trú cho vợ về ở nhà chồng thì cần chuẩn bị những "
         "giấy tờ gì, nộp ở đâu và mất bao lâu vậy?", Press(("Làm online được không?", "Mất bao lâu?")),
         "cảm ơn bạn nhiều"),
    flow("bảo hiểm y tế, elderly", "procedure",
         "Tôi năm nay 68 tuổi, bị mất thẻ bảo hiểm y tế tuần trước. Giờ muốn làm lại thì phải làm thế nào, "
         "có phải lên ủy ban không?", "có mất tiền không cháu", "cảm ơn cháu"),
    flow("kết hôn, buttons", "button",
         "dang ky ket hon can giay to gi", Press(("Các bước thực hiện", "Nộp ở đâu?")),
         Press(("Lệ phí", "Mất bao lâu?"))),
    flow("GPLX, teencode", "procedure",
         "đổi gplx hết hạn thì lm ntn v ad", "phí bao nhiu z", "thank ad"),
    flow("menu, buttons", "button",
         "xin chào", Press(("Làm giấy khai sinh", "Hỏi về một thủ tục", "Căn cước")),
         Press(("Lệ phí", "Cần giấy tờ gì?"))),
    flow("post office by ward", "post_office",
         "bưu điện gần nhất ở phường Cầu Giấy ở đâu ạ", "mấy giờ mở cửa vậy"),
    flow("post office, unaccented", "post_office",
         "buu dien gan nhat o dau vay", "o phuong hoan kiem", "cam on"),
    flow("post office, shared location", "post_office",
         "bđ gần nhất ở đâu ad", Share(21.0245, 105.8530)),
    flow("chit-chat", "chitchat",
         "chào bạn", "bạn là ai vậy", "bạn giúp được gì cho tôi", "cảm ơn bạn nhé"),
    flow("chit-chat, teencode", "chitchat",
         "hi ad", "ad ơi bưu điện hỗ trợ những gì v", "oki tks ad"),
)


class Script:
    """An endless walk through the flows for one citizen (seeded: a rerun sends the same messages)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.flow = self.rng.choice(FLOWS)
        self.index = 0

    def next(self) -> tuple[Flow, Step]:
        if self.index >= len(self.flow.steps):
            self.flow, self.index = self.rng.choice(FLOWS), 0
        step = self.flow.steps[self.index]
        self.index += 1
        return self.flow, step


def choose_button(titles: list[str], step: Press) -> str | None:
    """The title to press among ``titles`` for ``step``, or ``None`` when there is nothing suitable."""
    for title in step.prefer:
        if title in titles:
            return title
    return next((t for t in titles if t not in AVOID), None)
