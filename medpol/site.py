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
import os
import shutil
import subprocess
import sys
from pathlib import Path

import attrs
import jinja2

from compiler import words
from compiler.reasons import clauses
from dsl import ir
from medpol.api import CompiledPolicy, compile_text

SITE = Path(__file__).resolve().parent.parent / "site"


@attrs.define
class PolicyPages:
    policy: CompiledPolicy
    slug: str
    revisions: list  # (RevisionInfo, CompiledPolicy), newest first
    diffs: list  # (older label, newer label, page name, markdown)
    # Why the policy is a draft, not published: its revision is not yet effective, or its
    # file has changes not committed. Empty for a published policy.
    draft: tuple[str, ...] = ()
    in_effect: object = None  # for a draft, the committed revision in effect on the day (RevisionInfo)

    @property
    def title(self) -> str:
        return self.policy.model.policy.title


def _env(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
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
    env.filters["category"] = lambda c: words.CATEGORY_WORDS.get(c, c or "")
    return env


def escape_md(text: object) -> str:
    """Policy text shown literally: Markdown and HTML characters lose their meaning."""
    out = str(text)
    for ch in ("\\", "`", "*", "_", "[", "]", "<", ">", "|", "#"):
        out = out.replace(ch, "\\" + ch)
    return out


def _leaf(cond, policy: CompiledPolicy) -> str:
    model = policy.model
    if isinstance(cond, ir.DiagnosisIn):
        names = []
        for ref in cond.sets:
            cs = next((c for c in model.policy.code_sets if c.name == ref.name), None)
            codes = ", ".join(_dx_entry(e) for e in cs.entries if isinstance(e, ir.CodeEntry)) if cs else ""
            names.append(f"{escape_md(cs.title if cs else ref.name)} (`{codes}`)")
        return "a diagnosis of " + " or ".join(names)
    if isinstance(cond, ir.Truth) and cond.name in model.criteria:
        return f"[{escape_md(model.criteria[cond.name].title)}](#{_anchor(cond.name)}) is met"
    return f"`{words.describe(cond)}`"


def _dx_entry(entry: ir.CodeEntry) -> str:
    return f"{entry.code}-{entry.last}" if entry.last else entry.code


def condition_md(cond, policy: CompiledPolicy, depth: int = 0) -> str:
    """A condition as nested numbered lists, each numbered item beside its passage."""
    lines: list[str] = []
    _condition_lines(cond, policy, depth, lines)
    return "\n".join(lines)


def _items(cond) -> tuple:
    if isinstance(cond, (ir.AllOf, ir.AnyOf, ir.AtLeast)):
        return cond.items
    return (cond,)


def _condition_lines(cond, policy, depth, lines) -> None:
    pad = "    " * depth
    if isinstance(cond, ir.AllOf) and len(cond.items) == 1:
        _condition_lines(cond.items[0], policy, depth, lines)
        return
    if isinstance(cond, (ir.AllOf, ir.AnyOf, ir.AtLeast)):
        head = {ir.AllOf: "All of:", ir.AnyOf: "Any of:"}.get(type(cond)) or f"At least {cond.count} of:"
        lines.append(f"{pad}{head}")
        lines.append("")
        for number, item in enumerate(cond.items, 1):
            _list_item(item, policy, depth, number, lines)
        lines.append("")
        return
    if isinstance(cond, ir.Not) and isinstance(cond.item, ir.AnyOf) and len(cond.item.items) > 1:
        lines.append(f"{pad}None of:")
        lines.append("")
        for number, item in enumerate(cond.item.items, 1):
            _list_item(item, policy, depth, number, lines)
        lines.append("")
        return
    if isinstance(cond, ir.Clause):
        _list_item(cond, policy, depth, 1, lines)
        return
    lines.append(f"{pad}{_leaf(cond, policy)}")


def _list_item(item, policy, depth, number, lines) -> None:
    pad = "    " * depth
    inner = "    " * (depth + 1)
    if isinstance(item, ir.Clause):
        window = words.window_words(item.window)
        badge = f' <span class="effective">{window.capitalize()}</span>' if window else ""
        lines.append(f"{pad}{number}. **Item {item.label}**{badge}")
        lines.append("")
        for passage in item.passages:
            lines.append(f"{inner}> {escape_md(policy.model.policy and _expand(policy, passage.text))}")
            lines.append("")
        for sub in _items(item.condition):
            if isinstance(sub, (ir.AllOf, ir.AnyOf, ir.AtLeast, ir.Clause)) or (
                isinstance(sub, ir.Not) and isinstance(sub.item, ir.AnyOf)
            ):
                _condition_lines(sub, policy, depth + 1, lines)
            else:
                lines.append(f"{inner}- {_leaf(sub, policy)}")
        lines.append("")
        return
    if isinstance(item, (ir.AllOf, ir.AnyOf, ir.AtLeast)) and len(item.items) > 1:
        head = {ir.AllOf: "All of:", ir.AnyOf: "Any of:"}.get(type(item)) or f"At least {item.count} of:"
        lines.append(f"{pad}{number}. {head}")
        lines.append("")
        for sub_number, sub in enumerate(item.items, 1):
            _list_item(sub, policy, depth + 1, sub_number, lines)
        lines.append("")
        return
    lines.append(f"{pad}{number}. {_leaf(item, policy)}")


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
    }


def _sections(section: ir.Section, depth: int = 2):
    yield section, depth
    for sub in section.sections:
        yield from _sections(sub, depth + 1)


def collect(policies_dir: Path, today: datetime.date | None = None) -> list[PolicyPages]:
    """Compile the library in a folder, each policy with its revisions from git (when it is in git).

    The policies are loaded as the library is (every .policy file under the folder, linked),
    so a policy added to the folder is published without further ado. A policy is a draft
    when its revision takes effect after `today` or its file has uncommitted changes.
    """
    from compiler.diff import diff_policies
    from medpol.library import load_library
    from medpol.report import render_markdown
    from medpol.revisions import RefError, history, resolve

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
            md = render_markdown(diff, title_a=f"revision {old_rev.number}", title_b=f"revision {new_rev.number}")
            diffs.append((f"r{old_rev.number}", f"r{new_rev.number}", name, md))
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
    def walk(cond) -> bool:
        if isinstance(cond, ir.DiagnosisIn):
            return any(r.name == name for r in cond.sets)
        if isinstance(cond, (ir.AllOf, ir.AnyOf, ir.AtLeast)):
            return any(walk(i) for i in cond.items)
        if isinstance(cond, ir.Not):
            return walk(cond.item)
        if isinstance(cond, ir.Clause):
            return walk(cond.condition)
        return False

    return any(walk(c) for c in rule.requires + (rule.condition,))


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
    nav: list = [("Policies", "index.md")]
    drafts_nav: list = []
    policy_tpl = env.get_template("policy.md.j2")
    for page in pages:
        ctx = _policy_context(page.policy, page.slug, page.revisions, page.diffs, draft=page)
        (docs / f"{page.slug}.md").write_text(policy_tpl.render(**ctx), encoding="utf-8")
        revision_nav = []
        for rev, compiled in page.revisions:
            name = f"{page.slug}-r{rev.number}.md"
            ctx = _policy_context(compiled, page.slug, page.revisions, page.diffs, page_revision=rev)
            (docs / name).write_text(policy_tpl.render(**ctx), encoding="utf-8")
            revision_nav.append((f"Revision {rev.number}", name))
        diff_nav = []
        for old, new, name, md in page.diffs:
            (docs / f"{name}.md").write_text(md, encoding="utf-8")
            diff_nav.append((f"{old} → {new}", f"{name}.md"))
        current = "Draft policy" if page.draft else "Current policy"
        entry = (page.title, [(current, f"{page.slug}.md"), ("Revisions", revision_nav), ("What changed", diff_nav)])
        (drafts_nav if page.draft else nav).append(entry)
    if drafts_nav:
        nav.append(("Drafts", drafts_nav))
    hcpcs, icd = _code_index(pages)
    published = [page for page in pages if not page.draft]
    drafts = [page for page in pages if page.draft]
    index = env.get_template("index.md.j2").render(pages=pages, published=published, drafts=drafts)
    (docs / "index.md").write_text(index, encoding="utf-8")
    (docs / "codes.md").write_text(env.get_template("codes.md.j2").render(hcpcs=hcpcs, icd=icd), encoding="utf-8")
    nav.append(("Code lookup", "codes.md"))
    for extra, title in (
        ("language.md", "Policy language"),
        ("tutorial.md", "Tutorial: a policy section"),
        ("editing.md", "Editing policies"),
    ):
        if (docs / extra).exists():
            nav.append((title, extra))
    return nav


def _nav_yaml(nav, depth: int = 1) -> str:
    out = []
    pad = "  " * depth
    for title, target in nav:
        quoted = '"' + title.replace('"', '\\"') + '"'
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
) -> Path:
    """Render the pages and run mkdocs in strict mode; return the folder of HTML.

    `today` decides which policies are drafts (a revision not yet in effect); by default, today.
    """
    pages = collect(policies_dir, today)
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
