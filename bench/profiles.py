"""cProfile figures made readable: where a process's CPU goes, by area of code and by function.

The profilers run on the thread's CPU clock (`time.thread_time`), not the wall clock: a wait in
epoll or on a lock costs nothing, so `tottime` (time in a function itself, not its callees) sums
to the thread's CPU and its shares by area add up to 100%. cProfile slows Python code down (about
1.5-2x on small calls), which inflates the Python areas a little against C calls and the kernel.
"""

from __future__ import annotations

import pstats
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
_STDLIB = Path(sys.base_prefix).resolve()

# Areas worth naming on their own, by a file's first path parts (inside site-packages or the repo).
_AREAS = {
    "h11": "HTTP parsing (h11)",
    "uvicorn": "uvicorn",
    "starlette": "starlette/fastapi",
    "fastapi": "starlette/fastapi",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg",
    "anyio": "anyio",
    "opentelemetry": "opentelemetry",
    "prometheus_client": "prometheus_client",
    "api": "paysaga api/",
    "wallet": "paysaga wallet/",
    "ledger": "paysaga ledger/",
    "paysaga": "paysaga paysaga/",
    "bench": "the bench's driver",
}


def area(filename: str, function: str) -> str:
    """A short name for the code a profile entry belongs to."""
    if filename == "~":  # a C function: named by what it is a method of
        if any(word in function for word in ("socket", "select", "epoll", "send", "recv")):
            return "sockets and epoll (C)"
        return "other C builtins"
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        top = parts[parts.index("site-packages") + 1]
        return _AREAS.get(top, top)
    try:
        relative = path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        relative = None
    if relative is not None and relative.parts:
        return _AREAS.get(relative.parts[0], f"paysaga {relative.parts[0]}")
    if "asyncio" in parts:
        return "asyncio (stdlib)"
    if path.resolve().is_relative_to(_STDLIB) or filename.startswith("<frozen"):
        return f"stdlib {path.stem}"
    return "other"


def summarize(stats: pstats.Stats, *, calls: int, top: int = 15) -> dict[str, Any]:
    """CPU by area (seconds, share) and the `top` functions by own time; per call in µs."""
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1e-9
    by_area: dict[str, float] = {}
    functions = []
    for (filename, line, function), (_cc, ncalls, tottime, cumtime, _callers) in entries.items():
        name = area(filename, function)
        by_area[name] = by_area.get(name, 0.0) + tottime
        where = function if filename == "~" else f"{_short(filename)}:{line}({function})"
        functions.append((tottime, cumtime, ncalls, where, name))
    functions.sort(reverse=True)
    return {
        "profiled_cpu_seconds": round(total, 3),
        "calls": calls,
        "cpu_us_per_call": round(1e6 * total / calls, 1) if calls else None,
        "by_area": [
            {"area": name, "seconds": round(seconds, 3), "share": round(seconds / total, 3)}
            for name, seconds in sorted(by_area.items(), key=lambda item: -item[1])
        ],
        "top_functions": [
            {
                "function": where,
                "area": name,
                "own_seconds": round(tottime, 3),
                "cumulative_seconds": round(cumtime, 3),
                "ncalls": ncalls,
            }
            for tottime, cumtime, ncalls, where, name in functions[:top]
        ],
    }


def _short(filename: str) -> str:
    parts = Path(filename).parts
    if "site-packages" in parts:
        return "/".join(parts[parts.index("site-packages") + 1 :])
    try:
        return str(Path(filename).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return "/".join(parts[-2:])


def summary_lines(profile: dict[str, Any], areas: int = 6) -> list[str]:
    """Two lines for the bench's printout: the biggest areas, then the biggest functions."""
    shares = ", ".join(f"{a['area']} {100 * a['share']:.0f}%" for a in profile["by_area"][:areas])
    functions = ", ".join(
        f"{f['function']} {f['own_seconds']:.2f}s" for f in profile["top_functions"][:4]
    )
    per_call = profile["cpu_us_per_call"]
    return [
        f"  CPU {per_call} µs per call (profiled); by area: {shares}",
        f"  top functions (own time): {functions}",
    ]
