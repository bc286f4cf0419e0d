"""Every recorded saga history replays against the current saga code: the guard of saga changes.

A failure here means a change would break the payments in flight on that path. Make the change
with `workflow.patched` (README, "Changing a saga"); re-record the histories (`make histories`)
only for a change that no running payment can meet.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def test_record_a_history_of_every_saga() -> None:
    sagas = {path.stem.split("_")[0] for path in HISTORIES}
    assert sagas == {"deposit", "withdrawal", "transfer", "bonus", "refund", "dispute"}
    assert len(HISTORIES) >= 50


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_replay_saga_history(path: Path) -> None:
    await Replayer(workflows=WORKFLOWS).replay_workflow(load(path))
