"""Build the published policy site: jinja-rendered pages for every policy and revision, then mkdocs.

The pages come from the compiled policies, not from their text, so what a provider
reads is what claims are decided by. The site publishes a library: every policy under
the folder, a code lookup across them, and drafts (a revision not yet in effect, changes
not yet committed) apart from the published policies. `site/` holds the mkdocs
configuration, the page templates and theme overrides; everything generated goes to the
build folder.
"""

from __future__ import annotations

import datetime
import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import jinja2

from medpol.api import CompiledPolicy, compile_text
from medpol.compiler import words
from medpol.compiler.reasons import clauses
from medpol.dsl import ir
from medpol.history.report import escape_md
from medpol.publish.plain import Wording

SITE = Path(__file__).resolve().parents[2] / "site"


@attrs.define
class PolicyPages:
    policy: CompiledPolicy
    slug: str
    revisions: list  # (RevisionInfo, CompiledPolicy), newest first
    diffs: list  # (older label, newer label, page name, the diff as medpol.history.report.to_json gives it)
    # Why the policy is a draft, not published: its revision is not yet effective, or its
    # file has changes not committed. Empty for a published policy.
    draft: tuple[str, ...] = ()
    in_effect: object = None  # for a draft, the committed revision in effect on the day (RevisionInfo)

    @property
    def title(self) -> str:
        return self.policy.model.policy.title


def _env(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        # The site's own templates first; the reports' beside them, so a diff page and
        # `medpol diff --format html` share one stylesheet for their marks.
        loader=jinja2.ChoiceLoader(
            [jinja2.FileSystemLoader(str(templates)), jinja2.PackageLoader("medpol.history", "templates")]
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # the pages are Markdown; policy text is escaped by the `md` filter
    )
    env.filters["md"] = escape_md
    env.filters["condition"] = condition_md
    env.filters["window"] = words.window_words
    env.filters["decision"] = words.decision
    env.filters["category"] = lambda c: words.category_words(c) if c else ""
    return env


def _dx_entry(entry: ir.CodeEntry) -> str:
    return f"{entry.code}-{entry.last}" if entry.last else entry.code


def _wording(policy: CompiledPolicy, expand_criteria: bool = False) -> Wording:
    return Wording(policy.model, policy.passage_text, expand_criteria=expand_criteria)


def condition_md(cond, policy: CompiledPolicy, depth: int = 0) -> str:
    """A condition in plain words, as nested lists, each numbered item beside its passage."""
    return points_md(_wording(policy).points(cond), policy.model, depth)


def points_md(points, model, depth: int = 0, link=None, passages: bool = True) -> str:
    """Points (medpol.publish.plain) as a Markdown list; a criteria set links to its place on the page.

    `link` maps a criteria set's name to its URL; by default, its anchor on the same page.
    Without `passages`, numbered items show their label and questions only (a checklist
    prints short; the policy page has the passages).
    """
    link = link or (lambda name: f"#{_anchor(name)}")
    lines: list[str] = []
    _point_lines(points, model, depth, link, lines, passages)
    return "\n".join(lines)


def _point_lines(points, model, depth, link, lines, passages=True) -> None:
    pad = "    " * depth
    inner = "    " * (depth + 1)
    for point in points:
        if point.label:
            badge = f' <span class="effective">{point.window.capitalize()}</span>' if point.window else ""
            lines.append(f"{pad}- **{escape_md(point.label)}**{badge}")
            lines.append("")
            for passage in point.passages if passages else ():
                lines.append(f"{inner}> {escape_md(passage)}")
                lines.append("")
        elif point.criteria and not point.points:
            title = escape_md(model.criteria[point.criteria].title)
            text = escape_md(point.text).replace(title, f"[{title}]({link(point.criteria)})", 1)
            lines.append(f"{pad}- {text}")
        else:
            lines.append(f"{pad}- {escape_md(point.text)}")
        if point.points:
            lines.append("")
            _point_lines(point.points, model, depth + 1, link, lines, passages)
    lines.append("")


def rule_md(rule: ir.Rule, policy: CompiledPolicy, wording: Wording | None = None, link=None) -> str:
    """A rule as its plain sentence, with the points of its condition under it."""
    wording = wording or _wording(policy)
    sentence, points = wording.sentence(rule)
    text = escape_md(sentence)
    return text + ("\n\n" + points_md(points, policy.model, 0, link) if points else "\n")


def policy_code_md(policy: CompiledPolicy, span: ir.Span) -> str:
    """The policy code of a rule or criteria set, collapsed: one click away, never in the way.

    The block is the declaration's lines of the policy file as compiled (a revision's page
    shows that revision's code): the line at `span` and the lines indented under it.
    """
    text = getattr(policy, "_text", None)
    if not text or not span.line:
        return ""
    # Lines as the parser counts them (`\n` or `\r\n`), which `span.line` is: splitlines would
    # also break inside a string holding a form feed or a Unicode line separator.
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    head = lines[span.line - 1]
    indent = len(head) - len(head.lstrip())
    block = [head]
    for line in lines[span.line :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        block.append(line)
    code = "\n".join(line[indent:] for line in block if line.strip())
    return (
        '<details class="policy-code"><summary>Policy code</summary>\n'
        f"<pre><code>{html.escape(code)}</code></pre>\n</details>\n"
    )


def _expand(policy: CompiledPolicy, text: str) -> str:
    return policy.passage_text(text)


def _anchor(name: str) -> str:
    return name.lower().replace(".", "-").replace("_", "-")


def _slug(policy: CompiledPolicy) -> str:
    return policy.id


def _policy_context(
    policy: CompiledPolicy, slug: str, revisions, diffs, *, page_revision=None, draft: PolicyPages | None = None
) -> dict:
    model = policy.model
    pol = model.policy
    facts = [(name, fact) for name, fact in model.facts.items()]
    rules = list(pol.rules)
    items = {rule.id: [(cid, c) for cid, c in clauses(rule.condition, rule.id)] for rule in rules}
    wording = _wording(policy)
    return {
        "policy": policy,
        "pol": pol,
        "model": model,
        "slug": slug,
        "facts": facts,
        "items": items,
        "revisions": revisions,
        "diffs": diffs,
        "page_revision": page_revision,
        # The current page of a draft says why it is one, and which revision is in effect.
        "draft": draft.draft if draft is not None else (),
        "in_effect": draft.in_effect if draft is not None else None,
        "anchor": _anchor,
        "describe": words.describe,
        "code_description": lambda code: model.descriptions.get(code, ""),
        "sections": _sections,
        "wording": wording,
        "rule_md": lambda rule: rule_md(rule, policy, wording),
        "policy_code": lambda node: policy_code_md(policy, node.span),
        # The current policy links its checklists; a revision's page has none of its own.
        "checklists": []
        if page_revision is not None
        else [(code, checklist_path(slug, code)) for code in sorted(model.governed)],
    }


def checklist_path(slug: str, code: str) -> str:
    """The page of a code's checklist under a policy, relative to the site's root.

    The scheme is stable, so other pages (the code lookup) may link to it:
    `checklists/<policy id>/<HCPCS code>.md`, one page per code the policy governs.
    """
    return f"checklists/{slug}/{code}.md"


def write_checklists(env: jinja2.Environment, page: PolicyPages, docs: Path) -> list[tuple[str, str]]:
    """Write a checklist page for every code the policy governs; return their navigation."""
    policy = page.policy
    wording = _wording(policy, expand_criteria=True)
    template = env.get_template("checklist.md.j2")
    back = f"../../{page.slug}.md"

    def link(name: str) -> str:
        return f"{back}#{_anchor(name)}"

    nav = []
    for code in sorted(policy.model.governed):
        path = checklist_path(page.slug, code)
        text = template.render(
            checklist=wording.checklist(code),
            policy=policy,
            title=page.title,
            back=back,
            draft=bool(page.draft),
            anchor=lambda rule_id: f"{back}#{_anchor(rule_id)}",
            points=lambda points: points_md(points, policy.model, 0, link, passages=False),
        )
        (docs / path).parent.mkdir(parents=True, exist_ok=True)
        (docs / path).write_text(text, encoding="utf-8")
        nav.append((code, path))
    return nav


def _sections(section: ir.Section, depth: int = 2):
    yield section, depth
    for sub in section.sections:
        yield from _sections(sub, depth + 1)


@attrs.frozen
class ClaimSample:
    """Claims decided under both sides of every diff page, to show the lines that flip."""

    claims: tuple  # the claims, as read from the sample
    unreadable: tuple[str, ...] = ()  # the sample's lines that could not be read, named on each page


def collect(
    policies_dir: Path, today: datetime.date | None = None, claims: ClaimSample | None = None
) -> list[PolicyPages]:
    """Compile the library in a folder, each policy with its revisions from git (when it is in git).

    The policies are loaded as the library is (every .policy file under the folder, linked),
    so a policy added to the folder is published without further ado. A policy is a draft
    when its revision takes effect after `today` or its file has uncommitted changes.
    """
    from medpol.compiler.diff import diff_policies
    from medpol.engine.library import load_library
    from medpol.history.impact import impact
    from medpol.history.report import to_json
    from medpol.history.revisions import RefError, history, resolve

    today = today or datetime.date.today()
    library = load_library([policies_dir], warn=lambda message: print(message, file=sys.stderr))
    pages = []
    for policy in library.policies.values():
        path = policy.model.policy.path
        try:
            found = history(path)
        except RefError:
            found = []  # not in git: no revisions to publish, and nothing to tell a draft by but its date
        uncommitted = bool(found) and found[0].commit is None
        committed = [rev for rev in found if rev.commit is not None]
        revisions = []
        for rev in committed:
            version = resolve(f"{path}@r{rev.number}")
            revisions.append((rev, compile_text(version.text, version.path, read_source=version.source_reader)))
        diffs = []
        chronological = list(reversed(revisions))
        for (old_rev, old), (new_rev, new) in zip(chronological, chronological[1:], strict=False):
            diff = diff_policies(old.model, new.model)
            name = f"{policy.id}-diff-r{old_rev.number}-r{new_rev.number}"
            found = impact(old, new, claims.claims, None, claims.unreadable) if claims is not None else None
            report = to_json(diff, found, f"revision {old_rev.number}", f"revision {new_rev.number}")
            diffs.append((f"r{old_rev.number}", f"r{new_rev.number}", name, report))
        draft = []
        rev = policy.model.policy.revision
        if rev is not None and rev.effective > today:
            draft.append(f"revision {rev.number} takes effect on {rev.effective}")
        if uncommitted:
            draft.append("its file has changes not yet committed")
        in_effect = None
        if draft:
            # The revision claims are decided by until the draft is published and in effect.
            in_effect = next((r for r in committed if r.effective is not None and r.effective <= today), None)
        pages.append(PolicyPages(policy, _slug(policy), revisions, diffs, tuple(draft), in_effect))
    return pages


@attrs.frozen
class CodeUse:
    """What one policy says of a code: the rules that decide it, or the sets that list it."""

    slug: str
    title: str
    revision: str | None
    draft: bool
    rules: tuple[tuple[str, str, str], ...]  # (rule id, anchor on the policy's page, what it decides)
    listed: tuple[str, ...]  # the titles of the sets that list the code, when no rule decides it


def _code_index(pages: list[PolicyPages]) -> tuple[list, list]:
    """HCPCS and ICD-10-CM codes across the library: one row per code, each naming every
    policy that governs it (or lists it) and the rules that decide it there."""
    hcpcs: dict[str, dict] = {}
    icd: dict[str, dict] = {}

    def use(index: dict, code: str, page: PolicyPages, description: str = "") -> dict:
        entry = index.setdefault(code, {"description": "", "uses": {}})
        entry["description"] = entry["description"] or description
        return entry["uses"].setdefault(page.slug, {"page": page, "rules": [], "listed": []})

    for page in pages:
        model = page.policy.model
        for rule in model.policy.rules:
            for code in sorted(model.targets.get(rule.id, {})):
                found = use(hcpcs, code, page, model.descriptions.get(code, ""))
                found["rules"].append((rule.id, _anchor(rule.id), words.decision(rule)))
        for code in model.governed:  # the codes the library routes to the policy
            use(hcpcs, code, page, model.descriptions.get(code, ""))
        for table in model.policy.drug_tables:
            for drug in table.drugs:
                for code in drug.codes:
                    found = use(hcpcs, code, page, drug.name.replace("_", " "))
                    if table.title not in found["listed"]:
                        found["listed"].append(table.title)
        for cs in model.policy.code_sets:
            if cs.kind == "codes":
                for entry in cs.entries:
                    if isinstance(entry, ir.CodeEntry):
                        found = use(hcpcs, entry.code, page, entry.description or "")
                        if cs.title not in found["listed"]:
                            found["listed"].append(cs.title)
            else:
                users = [rule for rule in model.policy.rules if _mentions_dx(rule, cs.name)]
                for entry in cs.entries:
                    if isinstance(entry, ir.CodeEntry):
                        found = use(icd, _dx_entry(entry), page)
                        if cs.title not in found["listed"]:
                            found["listed"].append(cs.title)
                        for rule in users:
                            decided = (rule.id, _anchor(rule.id), words.decision(rule))
                            if decided not in found["rules"]:
                                found["rules"].append(decided)

    def rows(index: dict, listed_with_rules: bool) -> list:
        out = []
        for code in sorted(index):
            entry = index[code]
            uses = []
            for slug in sorted(entry["uses"]):
                found = entry["uses"][slug]
                page = found["page"]
                # An HCPCS code a rule decides needs no "listed in"; a diagnosis names its set.
                listed = found["listed"] if listed_with_rules or not found["rules"] else []
                uses.append(
                    CodeUse(
                        slug, page.title, page.policy.revision, bool(page.draft), tuple(found["rules"]), tuple(listed)
                    )
                )
            out.append((code, entry["description"], uses))
        return out

    return rows(hcpcs, False), rows(icd, True)


def _mentions_dx(rule: ir.Rule, name: str) -> bool:
    return any(
        isinstance(cond, ir.DiagnosisIn) and any(r.name == name for r in cond.sets)
        for top in rule.requires + (rule.condition,)
        for cond in ir.walk(top)
    )


def render_pages(pages: list[PolicyPages], docs: Path, site: Path = SITE) -> list[tuple[str, str]]:
    """Write the Markdown pages; return the navigation as (title, page) pairs."""
    env = _env(site / "templates")
    if docs.exists():
        shutil.rmtree(docs)
    docs.mkdir(parents=True)
    for static in sorted((site / "docs").rglob("*")):
        if static.is_file():
            target = docs / static.relative_to(site / "docs")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(static, target)
    (docs / "stylesheets").mkdir(exist_ok=True)
    (docs / "stylesheets" / "diff.css").write_text(env.get_template("diff.css.j2").render(), encoding="utf-8")
    nav: list = [("Policies", "index.md")]
    drafts_nav: list = []
    policy_tpl = env.get_template("policy.md.j2")
    diff_tpl = _diff_template(env)
    for page in pages:
        ctx = _policy_context(page.policy, page.slug, page.revisions, page.diffs, draft=page)
        (docs / f"{page.slug}.md").write_text(policy_tpl.render(**ctx), encoding="utf-8")
        revision_nav = []
        # The revision claims are decided by: the newest committed one, or for a draft the one in
        # effect. The revisions before it (page.revisions is newest first) are superseded; a draft's
        # revision not yet in effect supersedes nothing.
        in_effect = page.in_effect if page.draft else (page.revisions[0][0] if page.revisions else None)
        numbers = [rev.number for rev, _ in page.revisions]
        cut = numbers.index(in_effect.number) if in_effect is not None and in_effect.number in numbers else None
        for number, (rev, compiled) in enumerate(page.revisions):
            name = f"{page.slug}-r{rev.number}.md"
            ctx = _policy_context(compiled, page.slug, page.revisions, page.diffs, page_revision=rev)
            newer = in_effect if cut is not None and number > cut else None
            text = _for_search(policy_tpl.render(**ctx), SUPERSEDED_BOOST if newer else REVISION_BOOST)
            if newer is not None:
                text = _superseded(text, rev.number, newer.number, page.slug)
            (docs / name).write_text(text, encoding="utf-8")
            revision_nav.append((f"Revision {rev.number}", name))
        diff_nav = []
        for old, new, name, report in page.diffs:
            latest = name == page.diffs[-1][2]
            boost = REVISION_BOOST if latest else SUPERSEDED_BOOST
            md = diff_tpl.render(report=report, slug=page.slug, latest=latest, boost=boost)
            (docs / f"{name}.md").write_text(md, encoding="utf-8")
            diff_nav.append((f"{old} → {new}", f"{name}.md"))
        checklist_nav = write_checklists(env, page, docs)
        current = "Draft policy" if page.draft else "Current policy"
        entry = (
            page.title,
            [
                (current, f"{page.slug}.md"),
                ("Revisions", revision_nav),
                ("What changed", diff_nav),
                ("Checklists by code", checklist_nav),
            ],
        )
        (drafts_nav if page.draft else nav).append(entry)
    if drafts_nav:
        nav.append(("Drafts", drafts_nav))
    hcpcs, icd = _code_index(pages)
    published = [page for page in pages if not page.draft]
    drafts = [page for page in pages if page.draft]
    index = env.get_template("index.md.j2").render(pages=pages, published=published, drafts=drafts)
    (docs / "index.md").write_text(index, encoding="utf-8")

    def checklist(slug: str, code: str) -> str | None:
        # A code's checklist under a policy, linked only when its page was written: strict mode
        # refuses a link to a page that does not exist.
        path = f"checklists/{slug}/{code}.md"
        return path if (docs / path).is_file() else None

    codes = env.get_template("codes.md.j2").render(hcpcs=hcpcs, icd=icd, checklist=checklist)
    (docs / "codes.md").write_text(codes, encoding="utf-8")
    nav.append(("Code lookup", "codes.md"))
    for extra, title in (
        ("language.md", "Policy language"),
        ("tutorial.md", "Tutorial: a policy section"),
        ("editing.md", "Editing policies"),
    ):
        if (docs / extra).exists():
            nav.append((title, extra))
    return nav


# mkdocs-material ranks search results by `search.boost` (1 when a page sets none): a policy
# as it stands comes first, at the default; then its newest committed revision and latest
# diff; then the revisions it replaced and the diffs between them.
REVISION_BOOST = 0.8
SUPERSEDED_BOOST = 0.5


def _for_search(text: str, boost: float) -> str:
    """A page with its search boost in its front matter (added to front matter it already has)."""
    line = f"search:\n  boost: {boost}\n"
    if text.startswith("---\n"):
        return text if "\nsearch:" in text.split("\n---", 1)[0] else "---\n" + line + text[4:]
    return f"---\n{line}---\n\n{text}"


def _superseded(text: str, number: str, newer: str, slug: str) -> str:
    """A replaced revision's page says so in its heading, and so in its search results and
    tab title, and in a notice under the heading."""
    lines = text.split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith("# ")), None)
    if at is None:
        return text
    heading = lines[at].rstrip()
    lines[at] = heading[:-1] + ", superseded)" if heading.endswith(")") else heading + " (superseded)"
    notice = [
        "",
        '!!! warning "Superseded"',
        f"    Revision {number} has been superseded by revision {newer}. See the [current policy]({slug}.md).",
        "",
    ]
    lines[at + 1 : at + 1] = notice
    return "\n".join(lines)


def _diff_template(env: jinja2.Environment) -> jinja2.Template:
    """The site's diff page, with the standalone report's filters, so both word a change alike."""
    from medpol.history.report import SHOWN_UNREADABLE, _in_words, _plural

    env.filters["in_words"] = _in_words
    env.filters["plural"] = _plural
    env.globals["shown_unreadable"] = SHOWN_UNREADABLE
    return env.get_template("diff.md.j2")


def _nav_yaml(nav, depth: int = 1) -> str:
    out = []
    pad = "  " * depth
    for title, target in nav:
        # The theme puts a navigation title into its pages as HTML: a policy's title is escaped.
        # JSON is YAML's double-quoted style, so backslashes, quotes and line breaks (YAML also
        # breaks lines at U+0085, U+2028 and U+2029) stay inside the string.
        quoted = json.dumps(html.escape(title))
        if isinstance(target, list):
            if not target:
                continue
            out.append(f"{pad}- {quoted}:")
            out.append(_nav_yaml(target, depth + 1))
        else:
            out.append(f"{pad}- {quoted}: {target}")
    return "\n".join(out)


def build(
    policies_dir: Path,
    out: Path,
    site: Path = SITE,
    serve_url: str | None = None,
    today: datetime.date | None = None,
    claims: ClaimSample | None = None,
) -> Path:
    """Render the pages and run mkdocs in strict mode; return the folder of HTML.

    `today` decides which policies are drafts (a revision not yet in effect); by default, today.
    With `claims`, each diff page shows the claim lines whose outcome flips.
    """
    pages = collect(policies_dir, today, claims)
    docs = out / "docs"
    nav = render_pages(pages, docs, site)
    config = (site / "mkdocs.yml").read_text(encoding="utf-8")
    config = config.replace("docs_dir: docs", f"docs_dir: {docs.resolve()}")
    config = config.replace("custom_dir: overrides", f"custom_dir: {(site / 'overrides').resolve()}")
    config += "\nnav:\n" + _nav_yaml(nav) + "\n"
    (out / "mkdocs.yml").write_text(config, encoding="utf-8")
    html = out / "html"
    env = dict(os.environ)
    # Same input, same bytes: mkdocs stamps pages and the sitemap with the build time.
    env["SOURCE_DATE_EPOCH"] = str(_epoch(pages))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--quiet",
            "-f",
            str(out / "mkdocs.yml"),
            "-d",
            str(html.resolve()),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if result.returncode != 0:
        raise SiteError(result.stderr.strip() or result.stdout.strip())
    return html


def _epoch(pages: list[PolicyPages]) -> int:
    latest = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
    for page in pages:
        rev = page.policy.model.policy.revision
        if rev is not None:
            latest = max(latest, datetime.datetime(rev.dated.year, rev.dated.month, rev.dated.day, tzinfo=datetime.UTC))
    return int(latest.timestamp())


class SiteError(Exception):
    """mkdocs refused the site (strict mode turns warnings into errors)."""


def serve(policies_dir: Path, out: Path, port: int) -> None:
    """Serve the built site on localhost and rebuild it whenever a policy file changes."""
    import functools
    import http.server
    import threading
    import time

    def stamp() -> tuple:
        return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in policies_dir.rglob("*")))

    html = build(policies_dir, out)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"serving http://127.0.0.1:{port}/ (Ctrl-C to stop)", file=sys.stderr)
    seen = stamp()
    try:
        while True:
            time.sleep(1)
            now = stamp()
            if now != seen:
                seen = now
                try:
                    build(policies_dir, out)
                    print("rebuilt", file=sys.stderr)
                except Exception as err:  # noqa: BLE001 - keep serving the last good build
                    print(f"not rebuilt: {err}", file=sys.stderr)
    except KeyboardInterrupt:
        server.shutdown()
