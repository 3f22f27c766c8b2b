"""Load generated predicates: compile the source and register it for tracebacks.

As attrs does for the methods it generates, the source is entered in `linecache`
under a name of its own, so a traceback or debugger shows the generated line, whose
comment names the policy line it encodes.
"""

from __future__ import annotations

import hashlib
import linecache


def filename_for(path: str, source: str) -> str:
    digest = hashlib.sha1(source.encode("utf-8")).hexdigest()[:12]
    return f"<medpol generated {path} {digest}>"


def load(source: str, data: dict[str, object], path: str) -> dict:
    """Execute generated source with its data bound; return rule id -> predicate."""
    filename = filename_for(path, source)
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(keepends=True), filename)
    namespace: dict[str, object] = {"__name__": f"medpol_generated_{hashlib.sha1(path.encode()).hexdigest()[:8]}"}
    namespace.update(data)
    exec(code, namespace)  # noqa: S102 - our own generated code; policy literals arrive via repr() or as data
    return namespace["PREDICATES"]
