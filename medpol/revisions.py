"""Revisions of a policy in git: history, references to versions, and importing old revisions.

A revision is recognised by the revision header of the policy file at each commit that
changed it, not by commit order: teams import old revisions after new ones, and several
commits may carry one revision number (the last of them is the revision).

A reference names a version of a policy file:
    path                 the working tree
    path@r21             revision 21
    path@2025-12-20      the revision published (dated) on or before that day
    path@<commit or tag> the file as committed there
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

import attrs

from dsl.diagnostics import PolicyError
from dsl.lower import read

WORKING_TREE = "working tree"
_HEADER = re.compile(r"^\s*revision\s+(\S+)\s+dated\s+(\d{4}-\d{2}-\d{2})\s+effective\s+(\d{4}-\d{2}-\d{2})", re.M)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_REV = re.compile(r"^r(\w+)$")


class RefError(Exception):
    """A reference that names no version; the message is one line for the user."""


@attrs.frozen
class RevisionInfo:
    number: str
    dated: datetime.date | None
    effective: datetime.date | None
    description: str
    commit: str | None  # None for the working tree
    author: str | None
    committed: datetime.datetime | None
    path: str  # the policy file, relative to the repository
    text: str = attrs.field(repr=False)

    @property
    def label(self) -> str:
        if self.commit is None:
            return f"r{self.number} (working tree)"
        return f"r{self.number}"

    @property
    def short(self) -> str | None:
        return self.commit[:10] if self.commit else None


@attrs.frozen
class PolicyVersion:
    """The text of a policy at one version, and how to read its source document there."""

    text: str
    path: str  # a path for diagnostics and for locating the source document
    label: str
    revision: RevisionInfo | None
    source_reader: object = attrs.field(default=None, repr=False)  # relpath -> text | None


def _repo(path: str):
    import git

    target = Path(path).resolve()
    try:
        repo = git.Repo(target.parent if not target.is_dir() else target, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise RefError(f"`{path}` is not in a git repository") from None
    root = Path(repo.working_tree_dir).resolve()
    try:
        rel = target.relative_to(root).as_posix()
    except ValueError:
        raise RefError(f"`{path}` is outside the repository at `{root}`") from None
    return repo, rel


def header(text: str) -> tuple[str, datetime.date, datetime.date, str] | None:
    """The revision number, dates and description a policy text declares."""
    try:
        policy = read(text, "<revision>")
        rev = policy.revision
        if rev is None:
            return None
        description = " ".join(p.text for p in rev.description)
        if rev.note:
            description = f"{description} ({rev.note})" if description else rev.note
        return rev.number, rev.dated, rev.effective, description
    except PolicyError:
        # A version that no longer parses still names its revision in its header line.
        found = _HEADER.search(text)
        if not found:
            return None
        try:
            return found.group(1), _iso(found.group(2)), _iso(found.group(3)), ""
        except ValueError:
            return None


def _iso(text: str) -> datetime.date:
    return datetime.date.fromisoformat(text)


def _number_key(number: str) -> tuple:
    return (0, int(number), "") if number.isdigit() else (1, 0, number)


def history(path: str, include_working_tree: bool = True) -> list[RevisionInfo]:
    """The revisions of a policy file, newest first; uncommitted changes come first."""
    repo, rel = _repo(path)
    revisions: dict[str, RevisionInfo] = {}
    try:
        commits = list(repo.iter_commits(paths=rel))
    except ValueError:
        commits = []  # a repository without commits
    # Newest commit first: the first commit seen for a number is its revision's last commit.
    for commit in commits:
        try:
            blob = commit.tree / rel
        except KeyError:
            continue  # the file was deleted in this commit
        text = blob.data_stream.read().decode("utf-8", errors="replace")
        found = header(text)
        if found is None:
            continue
        number, dated, effective, description = found
        if number in revisions:
            continue
        revisions[number] = RevisionInfo(
            number,
            dated,
            effective,
            description,
            commit.hexsha,
            commit.author.name,
            commit.committed_datetime,
            rel,
            text,
        )
    ordered = sorted(
        revisions.values(), key=lambda r: (r.dated or datetime.date.min, _number_key(r.number)), reverse=True
    )
    if include_working_tree:
        file = Path(repo.working_tree_dir) / rel
        if file.exists():
            text = file.read_text(encoding="utf-8")
            if text != _text_at_head(repo, rel):
                found = header(text)
                number, dated, effective, description = found if found else ("?", None, None, "")
                ordered.insert(0, RevisionInfo(number, dated, effective, description, None, None, None, rel, text))
    return ordered


def _text_at_head(repo, rel: str) -> str | None:
    """The file's text at HEAD, if HEAD has it (to tell whether the working tree differs)."""
    try:
        blob = repo.head.commit.tree / rel
    except (KeyError, ValueError):
        return None
    return blob.data_stream.read().decode("utf-8", errors="replace")


def _reader_at(repo, commit, policy_rel: str):
    base = os.path.dirname(policy_rel)

    def read_source(relpath: str) -> str | None:
        target = os.path.normpath(os.path.join(base, relpath)).replace(os.sep, "/")
        try:
            return (commit.tree / target).data_stream.read().decode("utf-8", errors="replace")
        except KeyError:
            return None

    return read_source


def resolve(ref: str, known_at: datetime.date | None = None) -> PolicyVersion:
    """The version a reference names; with `known_at`, the revision published on that day."""
    path, _, spec = ref.partition("@")
    if not spec and known_at is None:
        if not Path(path).exists():
            raise RefError(f"`{path}` does not exist")
        return PolicyVersion(Path(path).read_text(encoding="utf-8"), path, path, None)
    if not Path(path).exists() and not spec:
        raise RefError(f"`{path}` does not exist")
    repo, rel = _repo(path)
    if known_at is not None and not spec:
        spec = known_at.isoformat()
    revisions = history(path, include_working_tree=False)
    if not revisions:
        raise RefError(f"`{path}` has no committed revisions")
    match = _REV.match(spec)
    if match:
        number = match.group(1)
        for rev in revisions:
            if rev.number == number or (number.isdigit() and rev.number.isdigit() and int(rev.number) == int(number)):
                return _version_of(repo, rev, path)
        known = ", ".join(f"r{r.number}" for r in reversed(revisions))
        raise RefError(f"`{path}` has no revision {number} (it has {known})")
    if _DATE.match(spec):
        try:
            day = _iso(spec)
        except ValueError:
            raise RefError(f"`{spec}` is not a date") from None
        published = [r for r in revisions if r.dated is not None and r.dated <= day]
        if not published:
            first = min(revisions, key=lambda r: r.dated or datetime.date.max)
            raise RefError(
                f"no revision of `{path}` was published by {day} (the first, r{first.number}, is dated {first.dated})"
            )
        return _version_of(repo, published[0], path)
    import git

    try:
        commit = repo.commit(spec)
    except (git.BadName, ValueError, git.BadObject):
        raise RefError(f"`{spec}` is not a revision (r21), a date (2025-12-20), a commit or a tag") from None
    try:
        text = (commit.tree / rel).data_stream.read().decode("utf-8", errors="replace")
    except KeyError:
        raise RefError(f"`{path}` does not exist at `{spec}`") from None
    found = header(text)
    info = None
    if found:
        number, dated, effective, description = found
        info = RevisionInfo(
            number,
            dated,
            effective,
            description,
            commit.hexsha,
            commit.author.name,
            commit.committed_datetime,
            rel,
            text,
        )
    return PolicyVersion(text, path, f"{path}@{spec}", info, _reader_at(repo, commit, rel))


def _version_of(repo, rev: RevisionInfo, path: str) -> PolicyVersion:
    commit = repo.commit(rev.commit)
    return PolicyVersion(rev.text, path, f"{path}@r{rev.number}", rev, _reader_at(repo, commit, rev.path))


def import_history(folder: str, into: str, author: str | None = None) -> list[RevisionInfo]:
    """Commit each policy file in `folder` to `into`, oldest revision first, dated as published.

    The revision header of each file decides its order and its commit date, so a
    team's archive of past revisions becomes history that `medpol history` reads.
    """
    import git

    files = sorted(p for p in Path(folder).iterdir() if p.suffix == ".policy")
    if not files:
        raise RefError(f"`{folder}` holds no .policy files")
    found = []
    for file in files:
        text = file.read_text(encoding="utf-8")
        head = header(text)
        if head is None:
            raise RefError(f"`{file}` has no revision header (`revision N dated YYYY-MM-DD effective YYYY-MM-DD`)")
        found.append((head, file, text))
    found.sort(key=lambda item: (item[0][1], _number_key(item[0][0])))
    target = Path(into)
    target.parent.mkdir(parents=True, exist_ok=True)
    repo, rel = _repo(str(target))
    actor = git.Actor(author or "medpol history import", "policy-team@localhost")
    for (number, dated, _effective, description), _file, text in found:
        target.write_text(text, encoding="utf-8")
        repo.index.add([rel])
        when = datetime.datetime(dated.year, dated.month, dated.day, 12, tzinfo=datetime.UTC)
        message = f"{Path(rel).stem} revision {number} ({dated.isoformat()})"
        if description:
            message += f"\n\n{description}"
        repo.index.commit(message, author=actor, committer=actor, author_date=when, commit_date=when)
    return [r for r in history(str(target), include_working_tree=False)]
