"""cProfile figures made readable: where a process's CPU goes, by area, by stage, by function.

The profilers run on the thread's CPU clock (`time.thread_time`), not the wall clock: a wait in
epoll or on a lock costs nothing, so `tottime` (time in a function itself, not its callees) sums
to the thread's CPU and its shares by area add up to 100%. A stage is the cumulative time of an
entry point (stages may nest). A coroutine counts a call each time it resumes, so `ncalls` of a
coroutine is not a number of requests. cProfile slows Python code down (about 1.5-3x on small
calls), which inflates the Python areas a little against C calls and the kernel.
"""

from __future__ import annotations

import pstats
import sysconfig
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()

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

Stage = tuple[str, str, str]
"""(label, the end of a file's path, a function name): a stage of the work, by its entry point."""


def area(filename: str, function: str) -> str:
    """A short name for the code a profile entry belongs to."""
    if filename == "~":  # a C function: named by what it is a method of
        if any(word in function for word in ("socket", "select", "epoll", "send", "recv")):
            return "sockets and epoll (C)"
        return "other C builtins"
    if filename.startswith("<frozen "):
        return f"stdlib {filename.removeprefix('<frozen ').rstrip('>')}"
    path = Path(filename)
    parts = path.parts
    if "site-packages" in parts:
        top = parts[parts.index("site-packages") + 1]
        return _AREAS.get(top, top)
    resolved = path.resolve()
    if resolved.is_relative_to(_STDLIB):
        return f"stdlib {resolved.relative_to(_STDLIB).parts[0].removesuffix('.py')}"
    if resolved.is_relative_to(REPO_ROOT):
        top = resolved.relative_to(REPO_ROOT).parts[0]
        return _AREAS.get(top, f"paysaga {top.removesuffix('.py')}")
    return "other"


def summarize(
    stats: pstats.Stats, *, calls: int, stages: Sequence[Stage] = (), top: int = 15
) -> dict[str, Any]:
    """CPU by area, by stage and the `top` functions by own time; CPU per call in µs."""
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
    stage_seconds = {
        label: max(
            (
                entry[3]
                for (filename, _line, function), entry in entries.items()
                if function == name and filename.endswith(suffix)
            ),
            default=0.0,
        )
        for label, suffix, name in stages
    }
    return {
        "profiled_cpu_seconds": round(total, 3),
        "calls": calls,
        "cpu_us_per_call": round(1e6 * total / calls, 1) if calls else None,
        "by_area": [
            {"area": name, "seconds": round(seconds, 3), "share": round(seconds / total, 3)}
            for name, seconds in sorted(by_area.items(), key=lambda item: -item[1])
        ],
        "stages": [
            {"stage": label, "seconds": round(seconds, 3), "share": round(seconds / total, 3)}
            for label, seconds in stage_seconds.items()
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


def area_text(profile: dict[str, Any], count: int = 6) -> str:
    return ", ".join(f"{a['area']} {100 * a['share']:.0f}%" for a in profile["by_area"][:count])


def stage_text(profile: dict[str, Any]) -> str:
    return ", ".join(f"{s['stage']} {100 * s['share']:.0f}%" for s in profile["stages"])


def summary_lines(profile: dict[str, Any]) -> list[str]:
    """Lines for the bench's printout: the biggest areas, the stages, the biggest functions."""
    functions = ", ".join(
        f"{f['function']} {f['own_seconds']:.2f}s" for f in profile["top_functions"][:4]
    )
    lines = [f"  CPU {profile['cpu_us_per_call']} µs per call (profiled); {area_text(profile)}"]
    if profile.get("stages"):
        lines.append(f"  by stage (cumulative, stages nest): {stage_text(profile)}")
    lines.append(f"  top functions (own time): {functions}")
    return lines
