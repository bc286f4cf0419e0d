"""A step order change made with `workflow.patched` replays the payments in flight; without, not."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.workflows.reordered_withdrawal import PatchedWithdrawal, UnguardedWithdrawal

# The reordered copy is frozen at the release it was made from: it replays that release's
# withdrawals, not the paths recorded after a later patch it does not know.
RECORDED_LATER = {"withdrawal_customer_in_debt"}  # behind the refuse-customer-in-debt patch
WITHDRAWALS = sorted(
    path
    for path in (Path(__file__).parent.parent / "histories").glob("withdrawal_*.json")
    if path.stem not in RECORDED_LATER
)


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


async def test_replay_withdrawals_with_patched_step_order() -> None:
    replayer = Replayer(workflows=[PatchedWithdrawal])
    assert len(WITHDRAWALS) >= 15
    for path in WITHDRAWALS:
        await replayer.replay_workflow(load(path))


async def test_refuse_replay_of_unpatched_step_order() -> None:
    """The guard bites: the same reordering without the patch breaks a withdrawal in flight.

    Observed with temporalio 1.35: local steps are matched to their recorded markers by order,
    so the swapped steps receive each other's recorded results; here the hold's result does not
    decode as a risk result and replay fails (RuntimeError), while two local steps with the same
    result type would swap silently. Hence the replay test, and `workflow.patched`.
    """
    history = load(Path(__file__).parent.parent / "histories" / "withdrawal_succeeded.json")
    with pytest.raises((NondeterminismError, RuntimeError)):
        await Replayer(workflows=[UnguardedWithdrawal]).replay_workflow(history)
