"""A step order change made with `workflow.patched` replays the payments in flight; without, not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.workflows.reordered_withdrawal import (
    PatchedWithdrawal,
    UnguardedWithdrawal,
    UntypedUnguardedWithdrawal,
)

# The reordered copy is frozen at the release it was made from: it replays that release's
# withdrawals, not the paths recorded after a later patch it does not know.
# Behind the refuse-customer-in-debt patch (the breaker's wait and spaced resends were
# recorded after it too).
RECORDED_LATER = {
    "withdrawal_customer_in_debt",
    "withdrawal_breaker_wait",
    "withdrawal_resends_spaced",
}
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

    Observed with temporalio 1.35: in replay the local steps are handed their recorded results
    by sequence number before their markers are checked, so the fraud rules' step (now second)
    first receives the hold's result, which does not decode as a risk result (RuntimeError).
    """
    history = load(Path(__file__).parent.parent / "histories" / "withdrawal_succeeded.json")
    with pytest.raises(RuntimeError, match="Failed decoding arguments"):
        await Replayer(workflows=[UnguardedWithdrawal]).replay_workflow(history)


async def test_refuse_replay_of_swapped_local_steps_whose_results_decode() -> None:
    """Swapped local steps never pass silently, even when each decodes the other's result.

    Temporal records a marker per local step, with its sequence number and activity type, and
    checks it against the step the code schedules there: the reordered code schedules the fraud
    rules where the hold was recorded, and replay fails with a NondeterminismError naming both.
    """
    history = load(Path(__file__).parent.parent / "histories" / "withdrawal_succeeded.json")
    with pytest.raises(
        NondeterminismError,
        match=re.escape(
            "Activity type of recorded marker 'ledger.hold_funds' does not match activity type"
            " of local activity command 'risk.assess_payment'"
        ),
    ):
        await Replayer(workflows=[UntypedUnguardedWithdrawal]).replay_workflow(history)
