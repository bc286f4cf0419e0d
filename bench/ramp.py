"""The open-loop ramp shared by deposits (through the API) and the bare workflow (on Temporal).

Steps of `step_seconds` at rates growing by `factor` from `start`; each step's payments are sent
on schedule whatever the answers take, then followed to their end before the next step begins.
The ramp stops after the knee: the first step whose completed/s falls below `knee_ratio` x the
offered rate, or whose end-to-end p50 passes `max_p50_ms`, or that loses payments.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.report import percentiles


@dataclass(frozen=True)
class RampConfig:
    start: float = 2.0
    factor: float = 1.5
    step_seconds: float = 8.0
    max_rate: float = 200.0
    max_steps: int = 20
    knee_ratio: float = 0.85
    max_p50_ms: float = 3000.0
    drain_timeout: float = 60.0

    def rates(self) -> list[float]:
        """start, start x factor, ... up to max_rate (at most max_steps), rounded to 0.1/s."""
        rates: list[float] = []
        rate = self.start
        while rate <= self.max_rate + 1e-9 and len(rates) < self.max_steps:
            rates.append(round(rate, 1))
            rate *= self.factor
        return rates

    def as_args(self) -> list[str]:
        """The command-line options of `add_arguments` that give this config."""
        return [
            *("--ramp-start", str(self.start), "--ramp-factor", str(self.factor)),
            *("--ramp-step-seconds", str(self.step_seconds)),
            *("--ramp-max-rate", str(self.max_rate), "--ramp-max-steps", str(self.max_steps)),
            *("--ramp-knee-ratio", str(self.knee_ratio)),
            *("--ramp-max-p50-ms", str(self.max_p50_ms)),
            *("--ramp-drain-timeout", str(self.drain_timeout)),
        ]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = RampConfig()
    group = parser.add_argument_group("the open-loop ramp (deposits and the bare workflow)")
    group.add_argument("--ramp-start", type=float, default=defaults.start, help="first rate, /s")
    group.add_argument("--ramp-factor", type=float, default=defaults.factor)
    group.add_argument("--ramp-step-seconds", type=float, default=defaults.step_seconds)
    group.add_argument("--ramp-max-rate", type=float, default=defaults.max_rate)
    group.add_argument("--ramp-max-steps", type=int, default=defaults.max_steps)
    group.add_argument(
        "--ramp-knee-ratio",
        type=float,
        default=defaults.knee_ratio,
        help="the knee: completed/s below this x offered",
    )
    group.add_argument(
        "--ramp-max-p50-ms",
        type=float,
        default=defaults.max_p50_ms,
        help="the knee: end-to-end p50 above this",
    )
    group.add_argument(
        "--ramp-drain-timeout",
        type=float,
        default=defaults.drain_timeout,
        help="how long a step's payments may take to end after its last is sent",
    )


def config_from(args: argparse.Namespace) -> RampConfig:
    return RampConfig(
        start=args.ramp_start,
        factor=args.ramp_factor,
        step_seconds=args.ramp_step_seconds,
        max_rate=args.ramp_max_rate,
        max_steps=args.ramp_max_steps,
        knee_ratio=args.ramp_knee_ratio,
        max_p50_ms=args.ramp_max_p50_ms,
        drain_timeout=args.ramp_drain_timeout,
    )


def completed_per_s(completions: Sequence[float]) -> float:
    """Completions per second between the first and the last completion of a step: the offered
    rate below the knee (whatever the latency), the service rate above it."""
    if len(completions) < 2:
        return 0.0
    ordered = sorted(completions)
    return (len(ordered) - 1) / max(ordered[-1] - ordered[0], 1e-9)


def step_figures(
    rate: float,
    seconds: float,
    *,
    sent: int,
    scheduled: Sequence[float],
    completed: Sequence[tuple[float, float]],
    accept_ms: Sequence[float] = (),
    send_lag_s: Sequence[float] = (),
    errors: int = 0,
    error_samples: Sequence[str] = (),
) -> dict[str, Any]:
    """One step's figures. `completed`: (scheduled, completed) of each payment that ended well."""
    figures: dict[str, Any] = {
        "rate": rate,
        "seconds": seconds,
        "sent": sent,
        "completed": len(completed),
        "errors": errors,
        "error_samples": list(error_samples)[:3],
        "offered_per_s": (
            (len(scheduled) - 1) / max(max(scheduled) - min(scheduled), 1e-9)
            if len(scheduled) > 1
            else rate
        ),
        "completed_per_s": completed_per_s([c for _s, c in completed]),
        "end_to_end_ms": percentiles([(c - s) * 1000 for s, c in completed]),
        "send_lag_ms": percentiles([x * 1000 for x in send_lag_s]),
    }
    if accept_ms:
        figures["accept_ms"] = percentiles(list(accept_ms))
    return figures


def knee_reason(step: dict[str, Any], config: RampConfig) -> str | None:
    """Why this step is the knee, or None if the ramp may go on."""
    if step["completed"] < step["sent"] or step["errors"]:
        return f"{step['sent'] - step['completed']} of {step['sent']} did not complete"
    if step["completed_per_s"] < config.knee_ratio * step["rate"]:
        return (
            f"completed {step['completed_per_s']:.1f}/s < {config.knee_ratio:g} x offered"
            f" {step['rate']:g}/s"
        )
    p50 = step["end_to_end_ms"]["p50"]
    if p50 is not None and p50 > config.max_p50_ms:
        return f"end-to-end p50 {p50:.0f} ms > {config.max_p50_ms:g} ms"
    return None


def summarize(steps: list[dict[str, Any]], config: RampConfig) -> dict[str, Any]:
    """The ramp's steps, its knee and the best completed/s of any step."""
    knee = next((s for s in steps if s.get("knee_reason")), None)
    best = max((s["completed_per_s"] for s in steps), default=0.0)
    below = [s for s in steps if not s.get("knee_reason")]
    return {
        "config": {
            "start": config.start,
            "factor": config.factor,
            "step_seconds": config.step_seconds,
            "knee_ratio": config.knee_ratio,
            "max_p50_ms": config.max_p50_ms,
        },
        "steps": steps,
        "best_completed_per_s": best,
        "knee_rate": knee["rate"] if knee else None,
        "knee_reason": knee["knee_reason"] if knee else None,
        "highest_rate_below_knee": max((s["rate"] for s in below), default=None),
    }
