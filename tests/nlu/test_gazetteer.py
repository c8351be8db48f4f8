"""Tests of nlu.gazetteer (pure: no Rasa)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlu.gazetteer import (
    LOCATION,
    PROCEDURE,
    CatalogError,
    Entry,
    Gazetteer,
    accents_compatible,
    build_gazetteer,
    fold_i_y,
    place_variants,
    read_catalog_names,
)
from nlu.normalize import syllables

NAME_WORDS = [
    "căn",
    "cước",
    "can",
    "cuoc",
    "cấp",
    "lại",
    "đăng",
    "ký",
    "kí",
    "kết",
    "hôn",
    "hônn",
    "đăg",
    "đất",
    "dat",
    "😀",
]


def words(text: str) -> list[str]:
    return [s.text for s in syllables(text)]


def found(gazetteer: Gazetteer, text: str) -> list[tuple[str, str, str, bool]]:
    tokens = words(text)
    matches = gazetteer.without_redundant_groups(gazetteer.match(tokens))
    return [(m.entity, m.value, " ".join(tokens[m.first : m.last]), m.exact) for m in matches]


@pytest.fixture
def gazetteer() -> Gazetteer:
    g = Gazetteer(groups={"can_cuoc": ["can_cuoc_cap_lai"]})
    g.add_name(PROCEDURE, "can_cuoc", "căn cước", 30)
    g.add_name(PROCEDURE, "can_cuoc_cap_lai", "cấp lại căn cước", 20)
    g.add_name(PROCEDURE, "ket_hon", "đăng ký kết hôn", 20)
    g.add_name(PROCEDURE, "ly_lich", "lý lịch tư pháp", 20)
    g.add_name(PROCEDURE, "dat_dai", "đất", 30)
    g.vocabulary.update({"hop", "dag"})
    return g


def test_accents_the_citizen_left_out_are_ignored(gazetteer: Gazetteer) -> None:
    assert found(gazetteer, "cap lai can cuoc") == [(PROCEDURE, "can_cuoc_cap_lai", "cap lai can cuoc", True)]
    assert found(gazetteer, "căn cuoc") == [(PROCEDURE, "can_cuoc", "căn cuoc", True)]
    assert found(gazetteer, "dat") == [(PROCEDURE, "dat_dai", "dat", True)]
    assert found(gazetteer, "đặt lịch") == []  # wrong accents, short name
    assert found(gazetteer, "dất") == [(PROCEDURE, "dat_dai", "dất", True)]  # stroke left out


def test_longest_match_wins_and_groups_give_way(gazetteer: Gazetteer) -> None:
    assert found(gazetteer, "căn cước bị mất, cần cấp lại căn cước") == [
        (PROCEDURE, "can_cuoc_cap_lai", "cấp lại căn cước", True)
    ]


def test_a_longer_name_beats_an_overlapping_one_on_its_left() -> None:
    g = Gazetteer()
    g.add_name(PROCEDURE, "xac_nhan", "xin giấy xác nhận", 30)
    g.add_name(PROCEDURE, "xac_nhan_tthn", "giấy xác nhận tình trạng hôn nhân", 20)
    g.add_name(PROCEDURE, "ket_hon", "kết hôn", 20)
    assert found(g, "xin giấy xác nhận tình trạng hôn nhân để kết hôn") == [
        (PROCEDURE, "xac_nhan_tthn", "giấy xác nhận tình trạng hôn nhân", True),
        (PROCEDURE, "ket_hon", "kết hôn", True),
    ]
    assert found(g, "xin giấy xác nhận cư trú") == [(PROCEDURE, "xac_nhan", "xin giấy xác nhận", True)]


def test_one_typo_in_long_names(gazetteer: Gazetteer) -> None:
    assert found(gazetteer, "đăng ký kết hônn") == [(PROCEDURE, "ket_hon", "đăng ký kết hônn", False)]
    assert found(gazetteer, "đăg ký kết hôn") == [(PROCEDURE, "ket_hon", "đăg ký kết hôn", False)]
    assert found(gazetteer, "đăng ký kết hợp") == []  # "hợp" is a known word
    assert found(gazetteer, "đăng kí kết hôn") == [(PROCEDURE, "ket_hon", "đăng kí kết hôn", True)]
    assert found(gazetteer, "lí lịch tư pháp") == [(PROCEDURE, "ly_lich", "lí lịch tư pháp", True)]
    assert found(gazetteer, "dang kyy ket hoon") == []  # two typos


def test_helpers() -> None:
    assert fold_i_y("ký") == "kí" and fold_i_y("quý") == "quí" and fold_i_y("yêu") == "yêu" and fold_i_y("ty") == "ti"
    assert accents_compatible("cuoc", "cước") and accents_compatible("cươc", "cước")
    assert not accents_compatible("cắn", "căn") and not accents_compatible("can", "cân đối")
    assert accents_compatible("xã", "xa")  # a name written without accents accepts any


def test_round_trip() -> None:
    g = Gazetteer([Entry(LOCATION, "Phường Hoàn Kiếm", ("hoàn", "kiếm"), 15)], ["abc"], groups={"g": ["x"]})
    again = Gazetteer.from_dict(g.to_dict())
    assert again.entries == g.entries and again.vocabulary == g.vocabulary and again.groups == g.groups


@pytest.mark.parametrize(
    ("name", "prefixed", "bare"),
    [
        ("Phường Hoàn Kiếm", ["phường hoàn kiếm", "p hoàn kiếm"], ["hoàn kiếm"]),
        ("Thị xã Sơn Tây", ["thị xã sơn tây", "tx sơn tây"], ["sơn tây"]),
        ("Quận 1", ["quận 1", "q 1", "q1"], []),
        ("Phường Bưởi", ["phường bưởi", "p bưởi"], []),
        ("Hà Nội", ["hà nội"], []),
    ],
)
def test_place_variants(name: str, prefixed: list[str], bare: list[str]) -> None:
    with_prefix, without = place_variants(name)
    assert [" ".join(t) for t in with_prefix] == prefixed
    assert [" ".join(t) for t in without] == bare


def test_build_from_files(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "_groups.yml").write_text(
        "groups:\n  - id: can_cuoc\n    names: [căn cước]\n    choices: [can_cuoc_cap_lai]\n  - names: [x]\n",
        encoding="utf-8",
    )
    (catalog / "can_cuoc.yml").write_text(
        "procedures:\n  - id: can_cuoc_cap_lai\n    name: Cấp lại thẻ căn cước\n    aliases: [cấp lại căn cước, 5]\n",
        encoding="utf-8",
    )
    offices = tmp_path / "post_offices.yml"
    offices.write_text(
        "post_offices:\n  - ward: Phường Hoàn Kiếm\n    old_district: Quận Hoàn Kiếm\n  - ward: Phường Hoàn Kiếm\n",
        encoding="utf-8",
    )
    g, warnings = build_gazetteer(catalog, offices)
    assert warnings == [f"{catalog / '_groups.yml'}: a group without an id is ignored"]
    assert g.groups == {"can_cuoc": ["can_cuoc_cap_lai"]}
    assert found(g, "cấp lại thẻ căn cước ở quận hoàn kiếm") == [
        (PROCEDURE, "can_cuoc_cap_lai", "cấp lại thẻ căn cước", True),
        (LOCATION, "Quận Hoàn Kiếm", "quận hoàn kiếm", True),
    ]
    assert found(g, "hoan kiem") == [(LOCATION, "Phường Hoàn Kiếm", "hoan kiem", True)]
    missing, warnings = build_gazetteer(tmp_path / "none", tmp_path / "none.yml")
    assert len(missing) == 0 and len(warnings) == 2


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text("procedures:\n  - id: [\n", encoding="utf-8")
    with pytest.raises(CatalogError, match=r"bad\.yml:\d+: invalid YAML"):
        read_catalog_names(tmp_path)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200) | st.lists(st.sampled_from(NAME_WORDS), max_size=30).map(" ".join))
def test_matching_never_raises_and_never_overlaps(gazetteer: Gazetteer, text: str) -> None:
    tokens = words(text)
    matches = gazetteer.match(tokens)
    previous = 0
    for match in matches:
        assert previous <= match.first < match.last <= len(tokens)
        previous = match.last


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("Phường Hải Châu", "hai chau"),
        ("p. hai chau", "hai chau"),
        ("Hai Chau", "hai chau"),
        ("HẢI CHÂU", "hai chau"),
        ("Quận 1", "1"),
        ("q1", "1"),
        ("Thị xã Sơn Tây", "son tay"),
        ("xa Binh Chanh", "binh chanh"),
        ("Hà Đông", "ha dong"),
        ("Thanh Xuân", "thanh xuan"),
        ("Phường", "phuong"),
    ],
)
def test_place_key_ignores_case_accents_and_prefixes(name: str, key: str) -> None:
    from nlu.gazetteer import place_key

    assert place_key(name) == key
