"""A library's settings (`library.toml`): each problem pointed at by line and column, under
the line it is on, as a policy's problems are."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from medpol.cli.main import main
from medpol.dsl.diagnostics import Diagnostic, PolicyError
from medpol.engine.library import check_files, load_library, read_settings

CANES = """\
medpol 1

policy canes "Canes"
  revision 1 dated 2026-01-01 effective 2026-01-01

facts
  walks_unaided: bool
    "Can the member walk without help?"

codes canes "Canes"
  E0100 "cane"

precedence
  deny as not reasonable and necessary
  cover

section ONE "Canes"
  rule cane
    cover E0100 unless walks_unaided
  rule cane_denied
    deny E0100 as not reasonable and necessary when walks_unaided
"""

ORDER = (
    '["error", "refer", "denied as not covered", "denied as incorrect coding",'
    ' "denied as not reasonable and necessary", "covered in part", "pending", "covered"]'
)

# tomllib stops at line 5, column 32: the second comma.
BAD_SYNTAX = 'name = "Canes"\n\n\n\nprecedence = ["error", "refer",, "covered"]\n'


@pytest.fixture
def library(tmp_path):
    folder = tmp_path / "lib"
    folder.mkdir()
    (folder / "canes.policy").write_text(CANES, encoding="utf-8")
    return folder


def settings_problems(library, text: str | bytes) -> list[Diagnostic]:
    path = library / "library.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return read_settings(library)[1]


def where(problem: Diagnostic) -> tuple[int, int, int]:
    return problem.line, problem.column, problem.width


def load_error(library, text: str) -> PolicyError:
    (library / "library.toml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_library([library])
    return err.value


# ------------------------------------------------------------ syntax


def test_a_syntax_error_is_at_the_line_and_column_tomllib_stopped(library):
    (problem,) = settings_problems(library, BAD_SYNTAX)
    assert problem.code == "bad-library-settings"
    assert (problem.line, problem.column) == (5, 32)
    # The position is the diagnostic's, not repeated in the message.
    assert problem.message == "cannot read the settings: invalid value"


def test_a_syntax_error_is_shown_under_its_line_with_a_caret(library):
    rendered = load_error(library, BAD_SYNTAX).render()
    assert rendered.splitlines() == [
        f"{library / 'library.toml'}:5:32: error[bad-library-settings]: cannot read the settings: invalid value",
        '5 | precedence = ["error", "refer",, "covered"]',
        "                                   ^",
    ]


def test_an_early_end_is_just_past_the_last_character(library):
    (problem,) = settings_problems(library, 'name = "Canes"\nprecedence = ["error",\n\n')
    assert (problem.line, problem.column) == (2, 23)
    assert "(at end of document)" not in problem.message


def test_a_syntax_error_on_the_first_line(library):
    (problem,) = settings_problems(library, "name = = 1\n")
    assert (problem.line, problem.column) == (1, 8)


def test_a_byte_that_is_not_utf8_is_pointed_at(library):
    (problem,) = settings_problems(library, b'name = "Canes"\ncolour = "\xff"\n')
    assert (problem.line, problem.column) == (2, 11)
    assert problem.message.startswith("cannot read the settings: 'utf-8' codec can't decode")


# ------------------------------------------------------------ keys


def test_an_unknown_key_is_at_its_line_with_a_caret_under_it(library):
    (problem,) = settings_problems(library, '# The library\nname = "Canes"\n\ncolour = 1\n')
    assert where(problem) == (4, 1, len("colour"))
    assert problem.message == "`colour` is not a setting"
    assert problem.help == "settings: name, precedence"


def test_a_number_for_the_name_is_a_problem_at_the_name(library):
    (problem,) = settings_problems(library, f"precedence = {ORDER}\n  name = 5\n")
    assert problem.code == "bad-library-settings"
    assert where(problem) == (2, 3, len("name"))
    assert problem.message == "`name` must be a string"


def test_a_library_named_by_a_number_does_not_load(library):
    error = load_error(library, "name = 5\n")
    assert [where(d) for d in error.diagnostics] == [(1, 1, 4)]
    assert "1 | name = 5\n    ^^^^" in error.render()


def test_a_bad_order_is_at_the_precedence_key(library):
    (problem,) = settings_problems(library, 'name = "Canes"\nprecedence = ["covered"]\n')
    assert where(problem) == (2, 1, len("precedence"))
    assert problem.message.startswith("`precedence` must order every outcome once: ")


def test_problems_come_in_the_order_of_the_file(library):
    problems = settings_problems(library, 'size = 2\nname = 5\nprecedence = ["covered"]\ncolour = "red"\n')
    assert [(p.line, p.message.split()[0]) for p in problems] == [
        (1, "`size`"),
        (2, "`name`"),
        (3, "`precedence`"),
        (4, "`colour`"),
    ]


def test_a_key_of_a_table_is_not_taken_for_the_setting(library):
    # `name` under [owner] is the table's: the top-level key the table sets is `owner`.
    problems = settings_problems(library, 'name = "Canes"\n[owner]\nname = 5\n')
    assert [(where(p), p.message) for p in problems] == [((2, 2, len("owner")), "`owner` is not a setting")]
    # A top-level `name` set after the table's is still found where it is set.
    problems = settings_problems(library, '[owner]\nname = "Ann"\n[name]\nfirst = "Canes"\n')
    assert [(where(p), p.message.split()[0]) for p in problems] == [
        ((1, 2, len("owner")), "`owner`"),
        ((3, 2, len("name")), "`name`"),
    ]


def test_a_table_is_found_by_its_first_name(library):
    (problem,) = settings_problems(library, 'name = "Canes"\n\n[[ "colour" . shade ]]\nx = 1\n')
    assert where(problem) == (3, 4, len('"colour"'))


def test_a_dotted_key_is_found_by_its_first_name(library):
    (problem,) = settings_problems(library, '\nname.first = "Canes"\n')
    assert where(problem) == (2, 1, len("name"))
    assert problem.message == "`name` must be a string"


def test_lines_inside_a_string_or_an_array_are_not_keys(library):
    text = (
        "notes = '''\n"
        "colour = 1\n"
        "[colour]\n"
        "'''\n"
        "precedence = [\n"
        '  ["name"],\n'
        '  "covered",\n'
        "]\n"
        "colour = 2\n"
        "name = 3\n"
    )
    problems = settings_problems(library, text)
    assert [(p.line, p.message.split()[0]) for p in problems] == [
        (1, "`notes`"),
        (5, "`precedence`"),
        (9, "`colour`"),
        (10, "`name`"),
    ]


# ------------------------------------------------------------ as users see them


def test_medpol_check_shows_each_problem_under_its_line(library):
    (library / "library.toml").write_text('name = "Canes"\ncolour = 1\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(library)])
    assert result.exit_code == 1
    shown = str(library / "library.toml")
    assert f"{shown}:2:1: error[bad-library-settings]: `colour` is not a setting\n2 | colour = 1\n    ^^^^^^\n" in (
        result.output
    )
    assert "checked 1 policy: 1 error, 0 warnings" in result.output


def test_medpol_check_shows_a_syntax_error_under_its_line(library):
    (library / "library.toml").write_text(BAD_SYNTAX, encoding="utf-8")
    result = CliRunner().invoke(main, ["check", str(library)])
    assert result.exit_code == 1
    assert ':5:32: error[bad-library-settings]: cannot read the settings: invalid value\n5 | precedence = ["error"' in (
        result.output
    )


def test_medpol_eval_shows_the_problem_and_decides_nothing(library, tmp_path):
    (library / "library.toml").write_text("name = 5\n", encoding="utf-8")
    claim = {
        "id": "C-1",
        "member": {"id": "M-1", "birth_date": "1950-01-01", "line_of_business": "commercial"},
        "diagnoses": [],
        "lines": [{"seq": 1, "hcpcs": "E0100", "service_date": "2026-03-01"}],
        "facts": {"walks_unaided": False},
    }
    claims = tmp_path / "claims.json"
    claims.write_bytes(orjson.dumps(claim))
    result = CliRunner().invoke(main, ["eval", str(library), str(claims)])
    assert result.exit_code == 1
    assert ":1:1: error[bad-library-settings]: `name` must be a string\n1 | name = 5\n    ^^^^\n" in result.output
    assert result.stdout == ""


def test_good_settings_still_load(library):
    (library / "library.toml").write_text(f'name = "Canes"\nprecedence = {ORDER}\n', encoding="utf-8")
    assert read_settings(library)[1] == []
    lib = load_library([library])
    assert lib.name == "Canes"
    checked = check_files([library / "canes.policy"], [library])
    assert [(str(path), diagnostics) for path, diagnostics, _text in checked] == [(str(library / "canes.policy"), [])]
