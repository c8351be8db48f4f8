"""Finding post offices by a shared location or a ward / old district name, from the real directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from actions.catalog.directory import distance_km, load_directory, place_key, read_directory
from actions.post_offices import ActionFindPostOffice
from dvcbot import PROJECT_ROOT
from tests.actions.helpers import actions_on, run, tracker

DIRECTORY = PROJECT_ROOT / "data" / "post_offices.yml"
ACTION = ActionFindPostOffice()


@pytest.fixture
def directory_db(engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    offices, errors = read_directory(DIRECTORY, PROJECT_ROOT)
    assert errors == []
    with Session(engine) as session:
        load_directory(session, offices)
    with actions_on(database_url, monkeypatch):
        yield


def test_place_keys_ignore_prefix_case_and_diacritics() -> None:
    assert place_key("Phường Hoàn Kiếm") == place_key("hoan kiem") == place_key("Q. Hoàn Kiếm") == "hoan kiem"
    assert round(distance_km(21.0245, 105.8530, 21.0285, 105.8542), 2) == 0.46


async def test_nearest_three_from_a_shared_location(directory_db: None) -> None:
    trk = tracker("/post_office_find", "post_office_find")
    trk.latest_message["metadata"] = {"location": {"lat": 21.0250, "lon": 105.8525}}
    msgs, _ = await run(ACTION, trk)
    text = msgs[0]["text"]
    assert text.startswith("Các bưu điện gần anh/chị nhất:\n\n1. Bưu điện Trung tâm Hoàn Kiếm")
    assert "cách khoảng 0,1 km" in text
    assert "Là điểm Đại lý dịch vụ công trực tuyến (đã xác minh)." in text
    assert text.count("\n\n") == 3  # heading + three entries
    assert "3. " in text and "4. " not in text


async def test_by_ward_entity_and_by_old_district_in_text(directory_db: None) -> None:
    entity = [{"entity": "location", "value": "Phường Hoàn Kiếm", "start": 0, "end": 5}]
    msgs, _ = await run(ACTION, tracker("bưu điện ở phường Hoàn Kiếm", "post_office_find", entity))
    assert msgs[0]["text"].startswith("Bưu điện ở khu vực anh/chị hỏi:\n\n1. Bưu điện Trung tâm Hoàn Kiếm")
    msgs, _ = await run(ACTION, tracker("buu dien gan cau giay", "post_office_find"))
    assert "Cầu Giấy" in msgs[0]["text"]
    assert "chưa được xác minh" in msgs[0]["text"]


async def test_unknown_place_and_no_place(directory_db: None) -> None:
    entity = [{"entity": "location", "value": "xã Tà Xùa", "start": 0, "end": 5}]
    msgs, _ = await run(ACTION, tracker("bưu điện xã Tà Xùa", "post_office_find", entity))
    assert msgs[0]["text"].startswith('Em chưa có bưu điện nào ở "xã Tà Xùa" trong danh bạ.')
    msgs, _ = await run(ACTION, tracker("bưu điện gần nhất ở đâu", "post_office_find"))
    assert msgs[0]["text"].startswith("Anh/chị đang ở phường/xã nào ạ?")


def test_directory_errors_have_lines(tmp_path: Path) -> None:
    bad = tmp_path / "post_offices.yml"
    bad.write_text(DIRECTORY.read_text(encoding="utf-8").replace("lat: 21.0245", "lat: 210.0245", 1),
                   encoding="utf-8")
    _, errors = read_directory(bad, tmp_path)
    assert [str(e) for e in errors] == [
        "post_offices.yml:12: post_offices.0.lat: Input should be less than or equal to 90"]
