"""The bare Temporal baseline: a workflow of four no-op activities, nothing else."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

STEPS = 4


@activity.defn(name="BenchNoop")
async def noop(step: int) -> int:
    """Does nothing: what is left is the cost of scheduling and recording an activity."""
    return step


@workflow.defn(name="BenchNoopWorkflow")
class NoopWorkflow:
    """Four activities in sequence, like the steps of a small saga."""

    @workflow.run
    async def run(self, steps: int) -> int:
        total = 0
        for step in range(steps):
            total += await workflow.execute_activity(
                noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        return total
