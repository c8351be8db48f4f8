"""The catalog format checks (with file and line) and the idempotent loader, on SQLite and PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from actions.catalog.loader import load_catalog
from actions.catalog.models import Procedure, ProcedureGroup
from actions.catalog.queries import search_procedures
from actions.catalog.schema import read_catalog

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "catalog"


def copy_catalog(tmp_path: Path) -> Path:
    target = tmp_path / "catalog"
    shutil.copytree(FIXTURES, target)
    return target


def errors_of(directory: Path) -> list[str]:
    _, errors = read_catalog(directory, directory.parent)
    return [str(e) for e in errors]


def test_fixture_catalog_is_valid() -> None:
    catalog, errors = read_catalog(FIXTURES)
    assert errors == []
    assert set(catalog.procedures) == {"khai_sinh", "ket_hon", "can_cuoc_cap_moi", "can_cuoc_cap_doi",
                                       "can_cuoc_cap_lai"}
    assert catalog.groups["can_cuoc"].choices[0] == "can_cuoc_cap_moi"


def test_unknown_key_is_reported_with_its_line(tmp_path: Path) -> None:
    d = copy_catalog(tmp_path)
    f = d / "ho_tich.yml"
    f.write_text(f.read_text().replace("    processing_time: null\n", "    processing_tme: 3 ngày\n"))
    assert errors_of(d) == ["catalog/ho_tich.yml:18: procedures.0.processing_tme: Extra inputs are not permitted"]


def test_bad_enum_value_points_at_its_line(tmp_path: Path) -> None:
    d = copy_catalog(tmp_path)
    f = d / "ho_tich.yml"
    f.write_text(f.read_text().replace("level: commune", "level: district"))
    (err,) = errors_of(d)
    assert err.startswith("catalog/ho_tich.yml:8: procedures.0.authority.level: Input should be")


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    d = copy_catalog(tmp_path)
    f = d / "can_cuoc.yml"
    f.write_text(f.read_text().replace("id: can_cuoc_cap_doi", "id: khai_sinh"))
    # files are read in name order, so the second one read is the one reported
    assert errors_of(d) == [
        "catalog/ho_tich.yml:3: id 'khai_sinh' is already used in catalog/can_cuoc.yml",
        "catalog/_groups.yml:5: choice 'can_cuoc_cap_doi' is not a procedure id in the catalog",
    ]


def test_alias_shared_between_procedures_even_without_diacritics(tmp_path: Path) -> None:
    d = copy_catalog(tmp_path)
    f = d / "ho_tich.yml"
    f.write_text(f.read_text().replace("aliases: [giấy đăng ký kết hôn]", "aliases: [lam giay khai sinh]"))
    errs = errors_of(d)
    assert len(errs) == 1
    assert errs[0] == ("catalog/ho_tich.yml:33: alias 'lam giay khai sinh' is also used by 'khai_sinh' "
                       "(catalog/ho_tich.yml:5)")


def test_group_choice_must_exist_and_yaml_errors_have_lines(tmp_path: Path) -> None:
    d = copy_catalog(tmp_path)
    g = d / "_groups.yml"
    g.write_text(g.read_text().replace("can_cuoc_cap_lai]", "can_cuoc_cap_lại]"))
    assert errors_of(d) == ["catalog/_groups.yml:5: choice 'can_cuoc_cap_lại' is not a procedure id in the catalog"]
    (d / "broken.yml").write_text("field: X\nprocedures:\n  - id: a\n   name: b\n")
    assert any(e.startswith("catalog/broken.yml:4: YAML error") for e in errors_of(d))


def test_bad_link_and_missing_source(tmp_path: Path) -> None:
    d = copy_catalog(tmp_path)
    f = d / "ho_tich.yml"
    text = f.read_text().replace("url: https://dichvucong.gov.vn/", "url: dichvucong.gov.vn")
    text = text.replace("    sources: [https://example.gov.vn/ket-hon]\n", "")
    f.write_text(text)
    errs = errors_of(d)
    url_error = "catalog/ho_tich.yml:25: procedures.0.online.url: Value error, not a web link"
    assert any(e.startswith(url_error) for e in errs)
    assert any(e.startswith("catalog/ho_tich.yml:31: procedures.1.sources: Field required") for e in errs)


def test_load_is_idempotent_and_reports_changes(engine: Engine, tmp_path: Path) -> None:
    d = copy_catalog(tmp_path)
    catalog, _ = read_catalog(d)
    with Session(engine) as session:
        first = load_catalog(session, catalog)
        assert sorted(first.added) == ["can_cuoc_cap_doi", "can_cuoc_cap_lai", "can_cuoc_cap_moi",
                                       "group:can_cuoc", "ket_hon", "khai_sinh"]
        again = load_catalog(session, catalog)
        assert (again.added, again.updated, again.removed, again.unchanged) == ([], [], [], 6)

    f = d / "ho_tich.yml"
    f.write_text(f.read_text().replace("name: Đăng ký kết hôn", "name: Đăng ký kết hôn (trong nước)"))
    (d / "can_cuoc.yml").write_text((d / "can_cuoc.yml").read_text().split("  - id: can_cuoc_cap_lai")[0])
    (d / "_groups.yml").write_text((d / "_groups.yml").read_text().replace(", can_cuoc_cap_lai", ""))
    catalog, errors = read_catalog(d)
    assert errors == []
    with Session(engine) as session:
        report = load_catalog(session, catalog)
        assert report.updated == ["ket_hon", "group:can_cuoc"]
        assert report.removed == ["can_cuoc_cap_lai"]
        assert session.get(Procedure, "ket_hon").name == "Đăng ký kết hôn (trong nước)"  # type: ignore[union-attr]
        assert session.scalars(select(ProcedureGroup.choices)).one() == ["can_cuoc_cap_moi", "can_cuoc_cap_doi"]


def test_search_ignores_diacritics_and_case(engine: Engine) -> None:
    catalog, _ = read_catalog(FIXTURES)
    with Session(engine) as session:
        load_catalog(session, catalog)
        assert [m.procedure_id for m in search_procedures(session, "LAM GIAY KHAI SINH")][:1] == ["khai_sinh"]
        assert search_procedures(session, "thời tiết hôm nay") == []
        assert search_procedures(session, "   ") == []
