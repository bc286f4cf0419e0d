"""The worker's decision guard in the workflow sandbox: only signed decisions reach a workflow,
through a key rotation, and its histories replay whatever the keys are by then."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.decision_guard import DecisionActivities, DecisionGuard
from domain.decisions import SIGNED_UPDATES, signed
from domain.payments import ProviderEventSignal, ReviewDecision

pytestmark = pytest.mark.asyncio(loop_scope="session")

OLD_KEY = "an old decision signing key, now rotated out"
NEW_KEY = "the new decision signing key, which signs now"


@workflow.defn(name="GuardedDecisions")
class GuardedDecisions:
    """Takes reviews and provider events, as the sagas do, and shows what reached it."""

    def __init__(self) -> None:
        self.taken: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: "done" in self.taken)
        return self.taken

    @workflow.signal(name="provider_event")
    def provider_event(self, event: ProviderEventSignal) -> None:
        self.taken.append(event.event_id)

    @workflow.update(name="review")
    def review(self, decision: ReviewDecision) -> str:
        self.taken.append(decision.decision)
        return decision.decision

    @review.validator
    def _review_allowed(self, decision: ReviewDecision) -> None:
        pass  # the guard runs where a validator runs: a signed update needs one


def event(event_id: str) -> ProviderEventSignal:
    return ProviderEventSignal(event_id, "sandbox-cards", "charge", "dep_x:charge", "succeeded", 1)


@asynccontextmanager
async def guarded_worker(
    client: Client, task_queue: str, keys: Sequence[str]
) -> AsyncIterator[None]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GuardedDecisions],
        activities=[DecisionActivities(keys).verify_decision],
        interceptors=[DecisionGuard(keys)],
        workflow_runner=SandboxedWorkflowRunner(),
    ):
        yield


async def verdicts(handle: WorkflowHandle[GuardedDecisions, list[str]]) -> int:
    """How many signals the guard has given its verdict on (local step markers)."""
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("marker_recorded_event_attributes")
        and e.marker_recorded_event_attributes.marker_name == "core_local_activity"
    )


async def wait_verdicts(handle: WorkflowHandle[GuardedDecisions, list[str]], count: int) -> None:
    while await verdicts(handle) < count:
        await asyncio.sleep(0.05)


async def test_guard_takes_signed_decisions_through_a_rotation_and_replays_without_keys(
    temporal_client: Client, task_queue: str
) -> None:
    workflow_id = f"guarded-{uuid.uuid4()}"
    handle = await temporal_client.start_workflow(
        GuardedDecisions.run, id=workflow_id, task_queue=task_queue
    )

    async with guarded_worker(temporal_client, task_queue, [NEW_KEY, OLD_KEY]):
        await handle.signal("provider_event", event("unsigned"))
        await handle.signal(
            "provider_event", signed([OLD_KEY], workflow_id, "provider_event", event("old-key"))
        )
        await handle.signal(
            "provider_event",
            signed([NEW_KEY], "another-workflow", "provider_event", event("elsewhere")),
        )
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("review", ReviewDecision("approve"))
        with pytest.raises(WorkflowUpdateFailedError):  # signed for another handler
            await handle.execute_update(
                "review", signed([NEW_KEY], workflow_id, "resolve", ReviewDecision("approve"))
            )
        approved = await handle.execute_update(
            "review", signed([NEW_KEY], workflow_id, "review", ReviewDecision("approve"))
        )
        await wait_verdicts(handle, 3)
    async with guarded_worker(temporal_client, task_queue, [NEW_KEY]):  # the old key dropped
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update(
                "review", signed([OLD_KEY], workflow_id, "review", ReviewDecision("reject"))
            )
        await handle.signal(
            "provider_event", signed([NEW_KEY], workflow_id, "provider_event", event("done"))
        )
        taken = await handle.result()

    assert approved == "approve"
    assert taken == ["old-key", "approve", "done"]
    history = await handle.fetch_history()
    for keys in ([NEW_KEY], ["a key made after all of it, by a later rotation"]):
        replayer = Replayer(workflows=[GuardedDecisions], interceptors=[DecisionGuard(keys)])
        await replayer.replay_workflow(history)


async def test_every_signed_update_of_the_workflows_has_a_validator() -> None:
    """The guard checks an update where its validator runs, and Temporal runs that step only for
    an update that has a validator."""
    from worker import WORKFLOWS  # not at the top: the sandbox re-imports this module

    for each in WORKFLOWS:
        updates = workflow._Definition.must_from_class(each).updates
        for name in SIGNED_UPDATES & set(updates):
            assert updates[name].validator is not None, f"{each.__name__}.{name}"
    names = {n for each in WORKFLOWS for n in workflow._Definition.must_from_class(each).updates}
    assert names >= SIGNED_UPDATES
