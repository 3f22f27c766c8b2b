"""Load generated predicates: compile the source and register it for tracebacks.

As attrs does for the methods it generates, the source is entered in `linecache`
under a name of its own, so a debugger shows the generated line. As jinja does for
templates, a traceback through generated code is rewritten to name the policy line
instead (`policy_traceback`): the generator keeps, beside the code, the map from
generated line to policy line (`LINE_MAP` in the module's namespace).
"""

from __future__ import annotations

import hashlib
import linecache
import sys
from types import TracebackType

GENERATED = "<medpol generated "


def filename_for(path: str, source: str) -> str:
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:12]
    return f"{GENERATED}{path} {digest}>"


def load(source: str, data: dict[str, object], path: str) -> dict:
    """Execute generated source with its data bound; return rule id -> predicate."""
    filename = filename_for(path, source)
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {"__name__": f"medpol_generated_{hashlib.sha1(path.encode()).hexdigest()[:8]}"}
    namespace.update(data)
    namespace["__medpol_policy__"] = path  # the file the line map's lines are in
    exec(code, namespace)  # noqa: S102 - our own generated code; policy literals arrive via repr() or as data
    return namespace["PREDICATES"]


def load_function(source: str, data: dict[str, object], path: str, name: str, line_map: dict[int, int]):
    """Execute the source of one generated function (a compiled decision, compiler.decision)
    with its data bound, and return the function; its line map names the policy lines."""
    filename = filename_for(path, source)
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {"__name__": f"medpol_generated_{hashlib.sha1(path.encode()).hexdigest()[:8]}"}
    namespace.update(data)
    namespace["LINE_MAP"] = line_map
    namespace["__medpol_policy__"] = path
    exec(code, namespace)  # noqa: S102 - our own generated code; policy literals arrive via repr() or as data
    return namespace[name]


def policy_traceback(exc: BaseException) -> BaseException:
    """`exc` with each frame of generated code in its traceback replaced by one at the
    policy line that code encodes (`external-infusion-pump.policy`, line 516, in the
    generated function's name). Frames of other code are kept as they are."""
    frames: list[TracebackType] = []
    tb = exc.__traceback__
    changed = False
    while tb is not None:
        replaced = _policy_frame(exc, tb)
        changed = changed or replaced is not tb
        frames.append(replaced)
        tb = tb.tb_next
    if not changed:
        return exc
    # Linked from the last frame back, so that no link ever closes a loop.
    for frame, after in reversed(list(zip(frames, [*frames[1:], None], strict=True))):
        frame.tb_next = after
    return exc.with_traceback(frames[0])


def _policy_frame(exc: BaseException, tb: TracebackType) -> TracebackType:
    code = tb.tb_frame.f_code
    where = tb.tb_frame.f_globals
    if not code.co_filename.startswith(GENERATED) or "LINE_MAP" not in where:
        return tb
    line = where["LINE_MAP"].get(tb.tb_lineno)
    path = where.get("__medpol_policy__")
    if line is None or not isinstance(path, str):
        return tb
    # A frame of our own at that line: a `raise` compiled under the policy's file name,
    # `line` lines down, in a function of the generated function's name.
    raiser = compile(_raise_at(path, line), path, "exec").replace(co_name=code.co_name)
    context, cause, suppress = exc.__context__, exc.__cause__, exc.__suppress_context__
    fake = None
    exc.__traceback__ = None  # the frames are the caller's to link: raise with none of them
    try:
        exec(raiser, {"e": exc})  # noqa: S102 - a constant `raise`, not policy text
    except BaseException:
        fake = sys.exc_info()[2].tb_next
    finally:
        # Raising again must not change what the exception says it arose from.
        exc.__context__, exc.__cause__, exc.__suppress_context__ = context, cause, suppress
    return fake if fake is not None else tb


def _raise_at(path: str, line: int) -> str:
    """Source raising `e` at `line`, spanning the policy line's text so that a traceback
    underlines none of it (it marks only part of a line)."""
    text = linecache.getline(path, line).rstrip()
    words = text.lstrip()
    indent = len(text) - len(words)
    statement = "raise(e" + " " * max(0, len(words) - 8) + ")"
    if indent and line > 1:
        return "\n" * (line - 2) + "if 1:\n" + " " * indent + statement
    return "\n" * (line - 1) + statement
