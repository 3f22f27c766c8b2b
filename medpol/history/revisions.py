"""Revisions of a policy in git: history, references to versions, and importing old revisions.

A revision is recognised by the revision header of the policy file at each commit that
changed it, not by commit order: teams import old revisions after new ones, and several
commits may carry one revision number (the last of them is the revision).

A reference names a version of a policy file:
    path                 the working tree
    path@r21             revision 21
    path@2025-12-20      the revision published (dated) on or before that day
    path@<commit or tag> the file as committed there

and of a library, a folder of policies (revision numbers belong to one policy each):
    folder                 the working tree
    folder@2025-12-20      each policy's revision published on or before that day
    folder@<commit or tag> the policies committed there
"""

from __future__ import annotations

import datetime
import os
import posixpath
import re
import tempfile
from pathlib import Path

import attrs

from medpol.dsl.diagnostics import PolicyError
from medpol.dsl.lower import read

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


def split_ref(ref: str) -> tuple[str, str, str]:
    """A reference as (path, "@" or "", spec).

    A file or folder may have `@` in its own name: the path is the longest part before an
    `@` that exists (or, for a file that exists only in history, names a .policy file), and
    the rest is the version, which may hold an `@` of its own (`HEAD@{1}`).
    """
    if "@" not in ref or Path(ref).exists():
        return ref, "", ""
    cuts = [i for i, ch in enumerate(ref) if ch == "@"]
    for fits in (lambda left: bool(left) and Path(left).exists(), lambda left: left.endswith(".policy")):
        for i in reversed(cuts):
            if fits(ref[:i]):
                return ref[:i], "@", ref[i + 1 :]
    return ref.partition("@")


def _commit(repo, spec: str, wrong: str):
    """The commit a commit, tag or branch name names; RefError (`wrong`) if it names none."""
    import git

    def named(ref: str) -> str | None:
        try:
            return repo.git.rev_parse("--verify", "--quiet", f"{ref}^{{commit}}")
        except git.GitCommandError:
            return None

    tagged, branched = named(f"refs/tags/{spec}"), named(f"refs/heads/{spec}")
    if tagged and branched and tagged != branched:
        # git would take the tag with only a warning; a version is not picked by a guess.
        raise RefError(f"`{spec}` is both a tag and a branch: say `tags/{spec}` or `heads/{spec}`")
    try:
        commit = repo.commit(spec)
        commit.tree  # noqa: B018 - reads the commit object, which a shallow clone may lack
    except (git.BadName, git.BadObject):
        raise RefError(wrong) from None
    except ValueError:
        if _is_shallow(repo):
            raise RefError(
                f"`{spec}` is not in this shallow clone: fetch its history (`git fetch --unshallow`)"
            ) from None
        raise RefError(wrong) from None
    return commit


def _is_shallow(repo) -> bool:
    return Path(repo.common_dir, "shallow").exists()


def _committed_text(commit, rel: str, shown: str) -> str:
    """A committed policy's text, refused at its first byte that is not UTF-8 text, as the
    working tree's file is (replacement characters could compile inside a passage)."""
    from medpol.api import policy_text

    return policy_text((commit.tree / rel).data_stream.read(), shown)


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


def _revision_order(rev: RevisionInfo) -> tuple:
    return (rev.dated or datetime.date.min, _number_key(rev.number))


def history(path: str, include_working_tree: bool = True) -> list[RevisionInfo]:
    """The revisions of a policy file, newest first; uncommitted changes come first."""
    repo, rel = _repo(path)
    return _history_in(repo, rel, include_working_tree)


def _history_in(repo, rel: str, include_working_tree: bool) -> list[RevisionInfo]:
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
    ordered = sorted(revisions.values(), key=_revision_order, reverse=True)
    if include_working_tree:
        file = Path(repo.working_tree_dir) / rel
        if file.exists():
            # Decoded as committed versions are, so a stray byte is a change shown, not a failure.
            text = file.read_text(encoding="utf-8", errors="replace")
            if text != _text_at_head(repo, rel):
                found = header(text)
                number, dated, effective, description = found if found else ("?", None, None, "")
                ordered.insert(0, RevisionInfo(number, dated, effective, description, None, None, None, rel, text))
    return ordered


def _text_at_head(repo, rel: str) -> str | None:
    """The file's text at HEAD, if HEAD has it (to tell whether the working tree differs)."""
    raw = _bytes_at_head(repo, rel)
    return raw.decode("utf-8", errors="replace") if raw is not None else None


def _bytes_at_head(repo, rel: str) -> bytes | None:
    """The file as HEAD holds it, if HEAD has it."""
    try:
        return (repo.head.commit.tree / rel).data_stream.read()
    except (KeyError, ValueError):
        return None


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
    path, at, spec = split_ref(ref)
    if at and not spec:
        # `path@` is not the working tree by default: the version asked for is missing.
        raise RefError(f"`{ref}` names no version: give a revision (r21), a date, a commit or a tag after `@`")
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
    commit = _commit(repo, spec, f"`{spec}` is not a revision (r21), a date (2025-12-20), a commit or a tag")
    try:
        text = _committed_text(commit, rel, path)
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
    # The history lists a stray byte as it lists any change; compiled, it is an error.
    text = _committed_text(commit, rev.path, path)
    return PolicyVersion(text, path, f"{path}@r{rev.number}", rev, _reader_at(repo, commit, rev.path))


def import_history(folder: str, into: str, author: str | None = None) -> list[RevisionInfo]:
    """Commit each policy file in `folder` to `into`, oldest revision first, dated as published.

    The revision header of each file decides its order and its commit date, so a
    team's archive of past revisions becomes history that `medpol history` reads.
    """
    import git

    try:
        files = sorted(p for p in Path(folder).iterdir() if p.suffix == ".policy")
    except OSError as err:
        raise RefError(f"cannot read the folder `{folder}`: {err.strerror}") from None
    if not files:
        raise RefError(f"`{folder}` holds no .policy files")
    found = []
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise RefError(f"`{file}` is not UTF-8 text (byte {err.start + 1})") from None
        except OSError as err:
            raise RefError(f"cannot read `{file}`: {err.strerror}") from None
        head = header(text)
        if head is None:
            raise RefError(f"`{file}` has no revision header (`revision N dated YYYY-MM-DD effective YYYY-MM-DD`)")
        found.append((head, file, text))
    found.sort(key=lambda item: (item[0][1], _number_key(item[0][0])))
    carried: dict[str, Path] = {}
    for (number, *_rest), file, _text in found:
        if number in carried:
            # One of them would be committed over the other, and history would list one.
            raise RefError(f"`{carried[number]}` and `{file}` both carry revision {number}")
        carried[number] = file
    target = Path(into)
    if target.is_dir() or target.suffix != ".policy":
        raise RefError(f"`{into}` is not a policy file: give the .policy file to build history for")
    target.parent.mkdir(parents=True, exist_ok=True)
    repo, rel = _repo(str(target))
    # Each revision is committed from the index, and written over the file: changes not yet
    # committed would go into the first revision's commit, or be lost.
    if repo.head.is_valid():
        staged = repo.git.diff("--cached", "--name-only").splitlines()
    else:
        staged = [path for path, _stage in repo.index.entries]
    if staged:
        raise RefError(f"the repository at `{repo.working_tree_dir}` has staged changes: commit them first")
    if target.exists() and target.read_bytes() != (_bytes_at_head(repo, rel) or b""):
        raise RefError(f"`{into}` has changes not committed: commit them first")
    before = target.read_bytes() if target.exists() else None
    actor = git.Actor(author or "medpol history import", "policy-team@localhost")
    for (number, dated, _effective, description), _file, text in found:
        target.write_text(text, encoding="utf-8")
        repo.index.add([rel])
        when = datetime.datetime(dated.year, dated.month, dated.day, 12, tzinfo=datetime.UTC)
        message = f"{Path(rel).stem} revision {number} ({dated.isoformat()})"
        if description:
            message += f"\n\n{description}"
        repo.index.commit(message, author=actor, committer=actor, author_date=when, commit_date=when)
    current = header(before.decode("utf-8", errors="replace")) if before is not None else None
    newest = found[-1][0]
    if current is not None and (current[1], _number_key(current[0])) > (newest[1], _number_key(newest[0])):
        # Older revisions imported after a newer one: the file goes back to the newer one, or
        # the policy in force would silently become the last revision imported.
        target.write_bytes(before)
        repo.index.add([rel])
        repo.index.commit(f"{Path(rel).stem} back to revision {current[0]} after importing older revisions")
    return [r for r in history(str(target), include_working_tree=False)]


# ---------------------------------------------------------------- a library: the policies of a folder

# The id a policy declares, read from its header: an old version is named even when it no
# longer compiles with today's compiler.
_POLICY_ID = re.compile(r"^policy\s+([a-z][a-z0-9]*(?:-[a-z0-9]+)*)\b", re.M)


def policy_id(text: str) -> str | None:
    found = _POLICY_ID.search(text)
    return found.group(1) if found else None


@attrs.frozen
class Removal:
    """The commit that took a policy's last file out of its folder (None: not yet committed)."""

    commit: str | None
    author: str | None
    committed: datetime.datetime | None

    @property
    def short(self) -> str | None:
        return self.commit[:10] if self.commit else None


@attrs.frozen
class PolicyHistory:
    """The revisions of one policy of a library, whichever files of the folder carried it."""

    policy: str
    paths: tuple[str, ...]  # relative to the repository
    revisions: tuple[RevisionInfo, ...]  # newest first; uncommitted changes first
    removed: Removal | None  # set when no file of the folder holds the policy any more


def _policy_paths(repo, rel: str) -> list[str]:
    """The .policy files under a folder, as it stands and as it was ever committed."""
    import git

    root = Path(repo.working_tree_dir)
    found = {p.relative_to(root).as_posix() for p in (root / rel).rglob("*.policy") if p.is_file()}
    try:
        # --no-renames: a policy moved to another file leaves its old path in the log, and
        # the revisions committed under that path are still the policy's.
        names = repo.git.log("--no-renames", "--format=", "--name-only", "-z", "--", rel)
    except git.GitCommandError:
        names = ""  # a repository without commits
    found.update(name.strip() for name in names.split("\0") if name.strip().endswith(".policy"))
    return sorted(found)


def _removal(repo, rel: str) -> Removal | None:
    """How a file that held a policy left the folder; None while it is there."""
    if (Path(repo.working_tree_dir) / rel).exists():
        return None
    try:
        newest = next(repo.iter_commits(paths=rel, max_count=1))
    except (StopIteration, ValueError):
        return Removal(None, None, None)
    try:
        newest.tree / rel
    except KeyError:
        return Removal(newest.hexsha, newest.author.name, newest.committed_datetime)
    return Removal(None, None, None)  # committed, then deleted in the working tree


def library_history(folder: str, include_working_tree: bool = True) -> list[PolicyHistory]:
    """Every policy a folder holds or held, by the id it declares, each with its revisions.

    Files are grouped by policy id, so a policy moved to another file keeps one history, and
    a policy whose files all left the folder is listed with the commit that removed it.
    """
    if not Path(folder).is_dir():
        raise RefError(f"`{folder}` is not a folder")
    repo, rel = _repo(folder)
    root = Path(repo.working_tree_dir)
    grouped: dict[str, dict] = {}
    for path in _policy_paths(repo, rel):
        revisions = _history_in(repo, path, include_working_tree)
        file = root / path
        if file.exists():
            text = file.read_text(encoding="utf-8", errors="replace")
        elif revisions:
            text = revisions[0].text
        else:
            continue  # gone, and never committed with a revision header
        group = grouped.setdefault(
            policy_id(text) or Path(path).stem, {"paths": [], "committed": {}, "working": [], "removals": []}
        )
        group["paths"].append(path)
        for rev in revisions:
            if rev.commit is None:
                group["working"].append(rev)
                continue
            seen = group["committed"].get(rev.number)
            # A number two files carried (the policy moved) is its revision's last commit in either.
            if seen is None or rev.committed > seen.committed:
                group["committed"][rev.number] = rev
        group["removals"].append(_removal(repo, path))
    found = []
    for pid in sorted(grouped):
        group = grouped[pid]
        committed = sorted(group["committed"].values(), key=_revision_order, reverse=True)
        removed = None
        if all(r is not None for r in group["removals"]):
            # The last of its files to leave: an uncommitted deletion is the latest of all.
            removed = max(
                group["removals"], key=lambda r: (r.commit is None, r.committed.timestamp() if r.committed else 0)
            )
        found.append(PolicyHistory(pid, tuple(group["paths"]), tuple(group["working"] + committed), removed))
    return found


@attrs.frozen
class LibraryVersion:
    """One version of a library, compiled and linked, and the policies it leaves out."""

    library: object  # medpol.engine.library.Library
    folder: str
    spec: str | None  # the commit, tag or date after `@`; None for the working tree
    left_out: tuple[str, ...] = ()  # policies of the folder not published by the date, and why

    @property
    def title(self) -> str:
        return self.spec if self.spec is not None else WORKING_TREE

    def ref(self, path: str) -> str:
        """The reference to one policy file at this version, as `medpol diff FILE@REF` takes it."""
        return path if self.spec is None else f"{path}@{self.spec}"


def load_library_version(ref: str) -> LibraryVersion:
    """The library a reference names: `folder`, `folder@<commit or tag>` or `folder@<date>`.

    Raises RefError for a reference that names no version, PolicyError for a version whose
    policies (or the links between them) have errors.
    """
    folder, at, spec = split_ref(ref)
    folder = folder or "."
    if not at:
        if not Path(folder).is_dir():
            raise RefError(f"`{folder}` is not a folder")
        return LibraryVersion(_working_library(folder), folder, None)
    if not spec:
        raise RefError(f"`{ref}` names no version: give a commit, a tag or a date after `@`")
    repo, rel = _repo(folder)
    if _DATE.match(spec):
        try:
            day = _iso(spec)
        except ValueError:
            raise RefError(f"`{spec}` is not a date") from None
        if not Path(folder).is_dir():
            raise RefError(f"`{folder}` is not a folder")
        left_out: list[str] = []
        return LibraryVersion(_working_library(folder, day, left_out.append), folder, spec, tuple(left_out))
    if _REV.match(spec):
        wrong = f"`{spec}` would name a revision of one policy; a version of the library is a commit, a tag or a date"
    else:
        wrong = f"`{spec}` is not a commit, a tag or a date (2025-12-20)"
    commit = _commit(repo, spec, wrong)
    try:
        tree = commit.tree if rel == "." else commit.tree / rel
    except KeyError:
        raise RefError(f"`{folder}` does not exist at `{spec}`") from None
    if tree.type != "tree":
        raise RefError(f"`{folder}` is not a folder at `{spec}`")
    return LibraryVersion(_committed_library(repo, commit, tree, folder, rel, spec), folder, spec)


def _library_name(folder: str) -> str:
    return Path(folder).resolve().name or "library"


def _working_library(folder: str, known_at: datetime.date | None = None, warn=None):
    from medpol.engine.library import Library, load_library

    if not any(p.is_file() for p in Path(folder).rglob("*.policy")):
        # A folder may hold no policies yet: compared with a later version, all are added.
        return Library([], _library_name(folder))
    return load_library([folder], known_at, warn=warn or (lambda _message: None))


def _committed_library(repo, commit, tree, folder: str, rel: str, spec: str):
    """Compile and link the policies a commit holds under a folder, as `load_library` does."""
    from medpol.api import compile_text, policy_text
    from medpol.compiler.link import link
    from medpol.engine.library import Library

    diagnostics: list = []
    sources: dict[str, str] = {}
    compiled = []
    blobs = [b for b in tree.traverse() if b.type == "blob" and b.path.endswith(".policy")]
    for blob in sorted(blobs, key=lambda b: b.path):
        inside = blob.path if rel == "." else posixpath.relpath(blob.path, rel)
        path = os.path.join(folder, inside)
        try:
            text = policy_text(blob.data_stream.read(), path)  # the blob in hand, decoded as any policy
            policy = compile_text(text, path, read_source=_reader_at(repo, commit, blob.path))
        except PolicyError as err:
            diagnostics.extend(err.diagnostics)
            sources.update(err.sources)
            continue
        policy.label = f"{path}@{spec}"
        compiled.append(policy)
    settings, problems, settings_text = _settings_at(tree, folder, spec)
    diagnostics.extend(problems)
    sources.update(settings_text)
    diagnostics.extend(link([c.model for c in compiled]))
    if any(d.severity == "error" for d in diagnostics):
        for c in compiled:
            sources.setdefault(c.model.policy.path, c._text)
        raise PolicyError(diagnostics, sources)
    precedence = tuple(settings["precedence"]) if "precedence" in settings else None
    return Library(compiled, settings.get("name") or _library_name(folder), precedence)


def _settings_at(tree, folder: str, spec: str) -> tuple[dict, list, dict[str, str]]:
    """The library's settings (`library.toml`) as committed, checked as the library checks
    them; with the committed text, by the name its problems are shown under."""
    from medpol.engine.library import read_settings

    try:
        blob = tree / "library.toml"
    except KeyError:
        return {}, [], {}
    with tempfile.TemporaryDirectory() as tmp:
        # The library reads its settings from a folder: the committed file is given one.
        Path(tmp, "library.toml").write_bytes(blob.data_stream.read())
        settings, problems, text = read_settings(Path(tmp))
    shown = f"{os.path.join(folder, 'library.toml')}@{spec}"
    return settings, [attrs.evolve(d, path=shown) for d in problems], {shown: text} if text is not None else {}
