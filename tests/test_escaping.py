"""What policy authors and claims write reaches every report and page as text: never as markup,
script, a link or a table cell of its own, and never evaluated as a template."""

from __future__ import annotations

import datetime
import html
import re
from html.parser import HTMLParser
from pathlib import Path

import git
import pytest
import yaml

from medpol.api import compile_text
from medpol.compiler.diff import diff_libraries, diff_policies
from medpol.history import report
from medpol.history.impact import impact, library_impact
from medpol.history.revisions import load_library_version
from medpol.publish import site
from tests.test_library_history import new_repo

# Markup, script, a comment, a CDATA end, a code span, a table cell's end, a link, jinja, an
# entity, and a Unicode line separator (a line break to YAML and to str.splitlines).
PAYLOAD = (
    '<script>alert(1)</script> "><img src=x onerror=alert(1)> ]]> `tick` a|b '
    "[link](javascript:alert(1)) {{ 7777*7 }} {% raw %} <!-- c &lt;b&gt; L\u2028S"
)
# What the jinja expression in the payload would render, were author text ever evaluated: a
# number no commit hash or page size would hold by chance.
EVALUATED = str(7777 * 7)
# Ending a heading or a table cell, an attribute list to Python-Markdown, which builds the site.
ATTRIBUTES = " { onclick=alert(2) }"
SERVICE_DATE = "2026-03-01"


def literal(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def said(word: str, title: bool = False) -> str:
    return literal(f"{word} {PAYLOAD}{ATTRIBUTES if title else ''}")


def evil_policy(rev: int) -> str:
    """Every string of the policy carries the payload; revision 2 adds an item, so a claim flips."""
    item_2 = f"\n        item 2 second\n          {said('Item two')}\n          question_fact" if rev == 2 else ""
    return f"""\
medpol 1

policy evil {said(f"Title {rev}", title=True)}
  revision {rev} dated 2026-0{rev}-01 effective 2026-0{rev}-01
    prepared by {said(f"Prepared {rev}")}
    approved by {said("Approved")}
    reviewed {said("Reviewed")}
    {said(f"Revision note {rev}")}
    note {said(f"Note {rev}")}
  description
    {said(f"Description {rev}")}
    "!!! danger \\"an admonition\\""

facts
  question_fact: bool
    {said(f"Question {rev}")}
  kind_fact: one of a {said(f"Label {rev}")}, b "plain b"
    {said("Which kind?")}

codes covered_items {said(f"Code set {rev}", title=True)}
  E1399 {said(f"Descriptor {rev}")}

diagnoses dx {said(f"Diagnoses {rev}", title=True)} = E83.11

criteria crit {said(f"Criteria {rev}", title=True)}
  {said(f"Criteria passage {rev}")}
  question_fact

section coverage {said(f"Section {rev}", title=True)}
  {said(f"Section passage {rev}")}
  rule coverage.covered_items
    {said(f"Rule passage {rev}")}
    cover covered_items when
      diagnosis in dx
      any of
        item 1 first
          {said(f"Item one {rev}")}
          kind_fact is a
          crit{item_2}
  rule coverage.criteria_not_met
    {said(f"Denial passage {rev}")}
    otherwise deny as not reasonable and necessary

change history
  revision {said(f"H{rev}")} dated {said("History date")} {said(f"History {rev}")}
    prepared by {said(f"History prepared {rev}")}
"""


# A policy added in the second version of a library, from a file whose name holds backticks.
OTHER = f"""\
medpol 1

policy other {said("Other", title=True)}
  revision 1 dated 2026-02-01 effective 2026-02-01

codes canes {said("Canes")}
  E0100 {said("Cane")}

section one "One"
  rule canes
    cover canes
"""
OTHER_FILE = "ot`her``.policy"

CLAIM = {
    "id": f"C1 {PAYLOAD}",
    "member": {"id": f"M {PAYLOAD}", "birth_date": "1970-01-01", "line_of_business": "commercial"},
    "diagnoses": ["E83.11"],
    "lines": [{"seq": 1, "hcpcs": "E1399", "service_date": SERVICE_DATE, "units": 1}],
    "facts": {"kind_fact": "b", "question_fact": True},
}
UNREADABLE = (f"claims.jsonl:2: not valid JSON: {PAYLOAD}",)


class Injected(HTMLParser):
    """What in an HTML page came from the payload as markup rather than as text."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False
        self._in_link = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}={value!r}>")
            if name in ("href", "src") and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")
        if tag == "img" and dict(attrs).get("src") == "x":
            self.found.append("<img src=x>")
        self._in_script = tag == "script"
        self._in_link = tag == "a"

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"
        self._in_link = self._in_link and tag != "a"

    def handle_data(self, data):
        if self._in_script and "alert" in data:
            self.found.append(f"<script>{data}")
        if self._in_link and data == "link":
            self.found.append("<a>link</a>")

    def handle_comment(self, data):
        if data.startswith(" c "):
            self.found.append(f"<!--{data[:20]}")


def injected(page: str) -> list[str]:
    parser = Injected()
    parser.feed(page)
    parser.close()
    code_spans = re.findall(r"<code>tick</code>", page)
    return parser.found + code_spans


def rendered(markdown_text: str) -> dict[str, str]:
    """The Markdown as HTML: by Python-Markdown with the site's extensions, and by CommonMark."""
    markdown = pytest.importorskip("markdown")
    markdown_it = pytest.importorskip("markdown_it")
    config = yaml.safe_load((site.SITE / "mkdocs.yml").read_text(encoding="utf-8"))
    extensions = [next(iter(e)) if isinstance(e, dict) else e for e in config["markdown_extensions"]]
    return {
        "python-markdown": markdown.markdown(markdown_text, extensions=extensions),
        "commonmark": markdown_it.MarkdownIt("commonmark").enable("table").render(markdown_text),
    }


def assert_shown_as_text(markdown_text: str) -> None:
    assert EVALUATED not in markdown_text  # jinja in author text is never evaluated
    for renderer, page in rendered(markdown_text).items():
        assert injected(page) == [], renderer
        assert "{{ 7777*7 }}" in html.unescape(page), renderer
        for table in re.findall(r"<table>.*?</table>", page, re.S):
            head, _, body = table.partition("</thead>")
            width = len(re.findall(r"<th[ >]", head))
            cells = [len(re.findall(r"<td[ >]", row)) for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
            assert cells == [width] * len(cells), (renderer, table[:300])


@pytest.fixture(scope="module")
def versions():
    return compile_text(evil_policy(1)), compile_text(evil_policy(2))


# ---------------------------------------------------------------- medpol diff


def test_markdown_diff_shows_author_text_as_written(versions):
    old, new = versions
    text = report.render_markdown(diff_policies(old.model, new.model), None, "revision 1", "revision 2")
    assert "<script>" not in text and "[link](javascript:" not in text
    assert_shown_as_text(text)


def test_markdown_diff_shows_claim_ids_and_unreadable_lines_as_written(versions):
    old, new = versions
    found = impact(old, new, [CLAIM], None, UNREADABLE)
    assert found.lines_changed == 1
    text = report.render_markdown(diff_policies(old.model, new.model), found, "revision 1", "revision 2")
    impact_section = text[text.index("## Impact on claims") :]
    assert "C1 &lt;script>" in impact_section and "not valid JSON: &lt;script>" in impact_section
    assert_shown_as_text(impact_section)


def test_html_diff_shows_author_and_claim_text_as_written(versions):
    old, new = versions
    found = impact(old, new, [CLAIM], None, UNREADABLE)
    page = report.render_html(diff_policies(old.model, new.model), found, "revision 1", "revision 2")
    assert injected(page) == []
    assert EVALUATED not in page and "{{ 7777*7 }}" in html.unescape(page)
    assert "<td>C1 &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_markdown_code_span_holds_any_text():
    markdown_it = pytest.importorskip("markdown_it")
    for text in ("plain", "a`b", "``x` <b>", "`"):
        span = report._code(text)
        assert markdown_it.MarkdownIt("commonmark").renderInline(span) == f"<code>{html.escape(text)}</code>"


# ---------------------------------------------------------------- a library in git


def commit(repo: git.Repo, files: dict[str, str], tag: str) -> None:
    root = Path(repo.working_tree_dir)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
        repo.index.add([name])
    repo.create_tag(tag, ref=repo.index.commit(tag).hexsha)


def test_markdown_library_diff_shows_author_claim_and_file_text_as_written(tmp_path):
    repo = new_repo(tmp_path / "plan")
    commit(repo, {"policies/evil.policy": evil_policy(1)}, "v1")
    commit(repo, {"policies/evil.policy": evil_policy(2), f"policies/{OTHER_FILE}": OTHER}, "v2")
    folder = str(tmp_path / "plan" / "policies")
    old, new = load_library_version(f"{folder}@v1"), load_library_version(f"{folder}@v2")
    diff = diff_libraries(*({pid: p.model for pid, p in v.library.policies.items()} for v in (old, new)))
    found = library_impact(old.library, new.library, [CLAIM], unreadable=UNREADABLE)
    sides = {"library": "policies", "a": report.Side("v1", "v1"), "b": report.Side("v2", "v2")}
    text = report.render_library_markdown(diff, found, **sides)
    assert "C1 &lt;script>" in text and "## Added: `other` Other &lt;script>" in text
    assert_shown_as_text(text)
    page = rendered(text)["commonmark"]
    assert f"<code>{html.escape(str(Path(folder) / OTHER_FILE))}</code>" in page  # the file, in one code span
    assert injected(report.render_library_html(diff, found, **sides)) == []


# ---------------------------------------------------------------- the site


def test_site_markdown_escape_leaves_no_markup_for_the_site():
    markdown = pytest.importorskip("markdown")
    config = yaml.safe_load((site.SITE / "mkdocs.yml").read_text(encoding="utf-8"))
    extensions = [next(iter(e)) if isinstance(e, dict) else e for e in config["markdown_extensions"]]
    title = site.escape_md("Braces { onclick=alert(2) }")
    page = markdown.markdown(
        f"## {title}\n\n### {title} {{ #the-rule }}\n\n| a | b |\n|---|---|\n| x | {title} |\n\n"
        + site.escape_md('!!! danger "x"')
        + "\n\n"
        + site.escape_md("less <b>than</b> & &lt;"),
        extensions=extensions,
    )
    assert "onclick=" not in page.replace("{ onclick=alert(2) }", "")
    assert 'id="the-rule"' in page  # the heading keeps the anchor the site links to
    assert "admonition" not in page
    assert "<p>less &lt;b&gt;than&lt;/b&gt; &amp; &amp;lt;</p>" in page  # no backslash shown


def test_navigation_titles_are_one_escaped_yaml_string():
    title = f"Title {PAYLOAD} \\x41 \u0085 \u2029"
    nav = yaml.safe_load(site._nav_yaml([(title, [("Current policy", "evil.md")])]))
    assert nav == [{html.escape(title): [{"Current policy": "evil.md"}]}]


def test_policy_code_of_a_rule_after_a_line_separator_is_that_rule(versions):
    _, new = versions
    rule = next(r for r in new.model.policy.rules if r.id == "coverage.criteria_not_met")
    block = site.policy_code_md(new, rule.span)
    code = html.unescape(block.split("<code>")[1].split("</code>")[0])
    assert code.splitlines()[0] == "rule coverage.criteria_not_met"
    assert code.endswith("otherwise deny as not reasonable and necessary")


def test_site_pages_show_author_and_claim_text_as_written(tmp_path):
    pytest.importorskip("material")
    repo = new_repo(tmp_path / "plan")
    commit(repo, {"policies/evil.policy": evil_policy(1)}, "v1")
    commit(repo, {"policies/evil.policy": evil_policy(2)}, "v2")
    sample = site.ClaimSample((CLAIM,), UNREADABLE)
    out = site.build(tmp_path / "plan" / "policies", tmp_path / "site", today=datetime.date(2026, 6, 1), claims=sample)
    pages = {str(p.relative_to(out)): p.read_text(encoding="utf-8") for p in out.rglob("*.html")}
    assert {"evil.html", "evil-r1.html", "evil-diff-r1-r2.html", "codes.html", "checklists/evil/E1399.html"} <= set(
        pages
    )
    for name, page in pages.items():
        assert injected(page) == [], name
        assert EVALUATED not in re.sub(r"<script.*?</script>|<svg.*?</svg>", "", page, flags=re.S), name
    policy_page = pages["evil.html"]
    assert "{{ 7777*7 }}" in html.unescape(policy_page)
    assert 'id="coverage-covered-items"' in policy_page  # the rule's anchor, which other pages link to
    history = re.search(r"<h2 id=\"change-history\">.*?</table>", policy_page, re.S).group(0)
    [row] = re.findall(r"<tr>\s*<td>H2.*?</tr>", history, re.S)
    assert row.count("<td") == 7
    assert "C1 &lt;script&gt;" in pages["evil-diff-r1-r2.html"]
