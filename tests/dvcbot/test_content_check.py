"""``dvcbot content check`` catches each kind of error at the right line (on temporary copies of the content)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from dvcbot import PROJECT_ROOT
from dvcbot.content import (
    RASA_BIN,
    CheckResult,
    ContentPaths,
    Problem,
    check_content,
    parse_rasa_output,
    report,
)

Check = Callable[..., list[Problem]]


def copy_project(dest: Path) -> Path:
    shutil.copytree(PROJECT_ROOT / "data", dest / "data")
    shutil.copytree(PROJECT_ROOT / "domain", dest / "domain")
    shutil.copy(PROJECT_ROOT / "config.yml", dest / "config.yml")
    return dest


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """What the unchanged copy reports (the tests look only at what their edit adds)."""
    root = copy_project(tmp_path_factory.mktemp("pristine"))
    return {str(p) for p in check_content(ContentPaths.at(root), rasa=False).problems}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path)


@pytest.fixture
def new_problems(project: Path, baseline: set[str]) -> Check:
    def run(errors_only: bool = True) -> list[Problem]:
        result = check_content(ContentPaths.at(project), rasa=False)
        found = result.errors if errors_only else result.problems
        return [p for p in found if str(p) not in baseline]

    return run


def edit(path: Path, old: str, new: str) -> int:
    """Replace the first ``old`` in ``path``; return the 1-based line where the new text starts."""
    text = path.read_text(encoding="utf-8")
    index = text.index(old)
    path.write_text(text[:index] + new + text[index + len(old):], encoding="utf-8")
    return text[:index].count("\n") + 1


def append(path: Path, text: str) -> int:
    """Append ``text``; return the 1-based line of its first line."""
    before = path.read_text(encoding="utf-8")
    if not before.endswith("\n"):
        before += "\n"
    path.write_text(before + text, encoding="utf-8")
    return before.count("\n") + 1


def where(problems: list[Problem]) -> list[tuple[str, int]]:
    return [(p.file, p.line) for p in problems]


def test_the_real_content_has_no_errors(baseline: set[str]) -> None:
    assert [p for p in baseline if ": warning: " not in p] == []


def test_catalog_error(project: Path, new_problems: Check) -> None:
    line = edit(project / "data/catalog/ho_tich.yml", "verified_on: 20", "verified_on: hôm qua #")
    found = [p for p in new_problems() if p.file == "data/catalog/ho_tich.yml"]
    assert where(found) == [("data/catalog/ho_tich.yml", line)]  # (the catalog check then drops the file, so
    assert "verified_on" in found[0].message  # groups that name its procedures are reported too)


def test_post_office_error(project: Path, new_problems: Check) -> None:
    line = edit(project / "data/post_offices.yml", "lat: 21.0245", "lat: 210.0245")
    found = new_problems()
    assert where(found) == [("data/post_offices.yml", line)]


def test_unknown_procedure_value_in_training_and_heldout(project: Path, new_problems: Check) -> None:
    nlu = project / "data/nlu/procedures.yml"
    line = edit(nlu, '"value": "ho_chieu"}', '"value": "ho_chieuu"}')
    heldout = project / "data/heldout/nlu.yml"
    held_line = edit(heldout, '"value": "dang_ky_xe"}', '"value": "dang_ky_xe_may"}')
    found = new_problems()
    assert sorted(where(found)) == [("data/heldout/nlu.yml", held_line), ("data/nlu/procedures.yml", line)]
    assert "'ho_chieuu'" in found[1].message and "did you mean 'ho_chieu'" in found[1].message
    assert "'dang_ky_xe_may'" in found[0].message


def test_unreachable_procedure(project: Path, new_problems: Check) -> None:
    # Two new procedures whose names read the same once "gplx" is expanded: the second can never be recognised.
    record = """  - id: {id}
    name: {name}
    sources: [https://dichvucong.gov.vn/]
    verified_on: 2026-11-27
"""
    path = project / "data/catalog/ho_chieu_gplx_xe.yml"
    append(path, record.format(id="gplx_tam_thoi", name="Giấy phép lái xe tạm thời"))
    first = append(path, record.format(id="gplx_tam_thoi_2", name="GPLX tạm thời"))
    found = new_problems(errors_only=False)
    assert [(p.file, p.line, p.warning) for p in found] == [
        ("data/catalog/ho_chieu_gplx_xe.yml", first, False),  # the id
        ("data/catalog/ho_chieu_gplx_xe.yml", first + 1, True),  # its name, read as the other one
    ]
    assert "'gplx_tam_thoi_2' cannot be recognised" in found[0].message
    assert "read as 'gplx_tam_thoi'" in found[1].message

    # an example that names it makes it reachable
    append(project / "data/nlu/procedures.yml",
           '- intent: procedure_info\n  examples: |\n'
           '    - hỏi về [gplx tạm thời]{"entity": "procedure", "value": "gplx_tam_thoi_2"}\n')
    assert new_problems() == []


def test_example_under_two_intents(project: Path, new_problems: Check) -> None:
    # "cảm ơn bạn nhiều" style: the same sentence, written without diacritics and in capitals, under another intent
    chitchat = (project / "data/nlu/chitchat.yml").read_text(encoding="utf-8")
    assert "- intent: thank" in chitchat
    original_line = edit(project / "data/nlu/chitchat.yml", "- intent: thank\n  examples: |\n",
                         "- intent: thank\n  examples: |\n    - Cảm ơn em nhiều lắm nhé\n") + 2
    added = append(project / "data/nlu/handoff.yml",
                   "- intent: human_handoff\n  examples: |\n    - CAM ON EM NHIEU LAM NHE!\n") + 2
    found = new_problems()
    assert sorted(where(found)) == [("data/nlu/chitchat.yml", original_line), ("data/nlu/handoff.yml", added)]
    by_file = {p.file: p.message for p in found}
    assert f"under 'human_handoff' in data/nlu/handoff.yml:{added}" in by_file["data/nlu/chitchat.yml"]
    assert f"under 'thank' in data/nlu/chitchat.yml:{original_line}" in by_file["data/nlu/handoff.yml"]


def test_example_without_dash(project: Path, new_problems: Check) -> None:
    line = edit(project / "data/nlu/procedures.yml", "    - tôi muốn làm [hộ chiếu]", "    tôi muốn làm [hộ chiếu]")
    assert where(new_problems()) == [("data/nlu/procedures.yml", line)]


def test_missing_response(project: Path, new_problems: Check) -> None:
    line = edit(project / "data/rules/chitchat.yml", "action: utter_goodbye", "action: utter_goodbey")
    found = new_problems()
    assert where(found) == [("data/rules/chitchat.yml", line)]
    assert "response 'utter_goodbey' is not in the domain (did you mean 'utter_goodbye'?)" in found[0].message


def test_unregistered_action(project: Path, new_problems: Check) -> None:
    line = edit(project / "data/rules/procedures.yml", "action: action_answer_procedure",
                "action: action_answer_procedures")
    found = new_problems()
    assert where(found) == [("data/rules/procedures.yml", line)]
    assert "neither a response nor a registered custom action" in found[0].message


def test_action_listed_in_domain_but_not_implemented(project: Path, new_problems: Check) -> None:
    line = edit(project / "domain/core.yml", "  - action_fallback\n", "  - action_fallback\n  - action_send_sms\n") + 1
    found = new_problems()
    assert where(found) == [("domain/core.yml", line)]
    assert "'action_send_sms' is listed in the domain but no custom action" in found[0].message


def test_intent_and_form_not_in_domain(project: Path, new_problems: Check) -> None:
    line = edit(project / "data/rules/procedures.yml", "intent: procedure_fee", "intent: procedure_fees")
    found = new_problems()
    assert where(found) == [("data/rules/procedures.yml", line)]
    assert "intent 'procedure_fees' is not in the domain" in found[0].message


def test_abbreviations_dictionary(project: Path, new_problems: Check) -> None:
    path = project / "data/lexicon/abbreviations.yml"
    upper = append(path, "  Xyz: xin ý kiến\n")
    duplicate = append(path, "  ko: không\n")
    found = new_problems()
    assert where(found) == [("data/lexicon/abbreviations.yml", upper), ("data/lexicon/abbreviations.yml", duplicate)]
    assert "lower case" in found[0].message and "duplicate key 'ko'" in found[1].message


def test_yaml_syntax_error_in_nlu(project: Path, new_problems: Check) -> None:
    line = append(project / "data/nlu/services.yml", "- intent: [broken\n")
    found = new_problems()
    assert [p.file for p in found] == ["data/nlu/services.yml"]
    assert found[0].line >= line and "YAML error" in found[0].message


def test_rasa_output_is_reduced_to_what_matters() -> None:
    output = (
        "/x/rasa/core/tracker_store.py:1044: MovedIn20Warning: Deprecated API features detected!\n"
        "  Base: DeclarativeMeta = declarative_base()\n"
        "2026-11-27 08:28:05 INFO     rasa.validator  - Validating intents...\n"
        "\x1b[93m/x/rasa/shared/utils/io.py:100: UserWarning: The utterance 'utter_x' is not used in any story or "
        "rule.\n\x1b[0m"
        "\x1b[93m/x/rasa/shared/utils/io.py:100: UserWarning: The intent 'greet' is used in your stories, but it "
        "is not listed in the domain file. You should add it to your domain file!\n\x1b[0m"
        "2026-11-27 08:28:05 INFO     rasa.validator  - Story structure validation...\n"
        "\x1b[91mProject validation completed with errors.\x1b[0m\n"
    )
    failed = parse_rasa_output(output, 1)
    assert failed.ignored == 1
    assert failed.errors == [
        "The intent 'greet' is used in your stories, but it is not listed in the domain file. You should add it "
        "to your domain file!",
        "Project validation completed with errors.",
    ]
    unused = "2026-11-27 08:28:05 WARNING  rasa.validator  - The intent 'x' is not used in any story or rule.\n"
    passed = parse_rasa_output(output.replace("Project validation completed with errors.", "") + unused, 0)
    assert passed.errors == failed.errors[:1]  # Rasa exits 0 after that one, but it is an error
    assert passed.warnings == ["The intent 'x' is not used in any story or rule."]
    assert parse_rasa_output("Traceback ...\nKeyError: 'x'\n", 1).errors == [
        "rasa data validate exited with 1: Traceback ... / KeyError: 'x'"]


def test_report_and_exit_code() -> None:
    lines: list[str] = []
    counts = {"procedures": 1, "groups": 0, "post_offices": 1, "examples": 2, "intents": 1, "heldout": 1}
    bad = CheckResult([Problem("data/nlu/a.yml", 3, "boom"), Problem("data/nlu/a.yml", 4, "hmm", warning=True)],
                      counts)
    assert report(bad, lines.append) == 1
    assert lines[:2] == ["data/nlu/a.yml:3: boom", "data/nlu/a.yml:4: warning: hmm"]
    assert lines[2].startswith("Content check FAILED: 1 error(s), 1 warning(s).")
    lines.clear()
    assert report(CheckResult([], counts), lines.append) == 0
    assert lines[0].startswith("Content OK")


@pytest.mark.skipif(not RASA_BIN.exists(), reason="Rasa venv missing (make setup)")
def test_rasa_data_validate_runs_and_its_errors_fail_the_check(project: Path) -> None:
    edit(project / "data/rules/chitchat.yml", "action: utter_goodbye", "action: utter_goodbey")
    result = check_content(ContentPaths.at(project))
    assert result.rasa is not None  # (Rasa 3.6 exits 0 here: dvcbot knows which of its warnings are errors)
    assert any("'utter_goodbey'" in message for message in result.rasa.errors), result.rasa
    assert not result.ok
