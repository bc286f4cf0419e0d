"""Every recorded workflow history replays against the current code: the guard of saga changes.

The sagas' histories, and those of the workflows beside them (merchant notifications and
redeliveries, the orphan sweep and its SagaNotStarted, reconciliation, retention): a schedule's
run or a notification in flight during a deploy replays on the new worker just as a payment does.
A failure here means a change would break the workflows in flight on that path. Make the change
with `workflow.patched` (README, "Changing a saga"); re-record the histories (`make histories`)
only for a change that no running workflow can meet.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from activities.decision_guard import DecisionGuard
from paysaga.settings import Settings
from worker import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent.parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def workflow_type(path: Path) -> str:
    started = json.loads(path.read_text())["events"][0]
    return str(started["workflowExecutionStartedEventAttributes"]["workflowType"]["name"])


def test_record_a_history_of_every_workflow() -> None:
    registered = {workflow._Definition.must_from_class(each).name for each in WORKFLOWS}
    assert {workflow_type(path) for path in HISTORIES} == registered
    sagas = {path.stem.split("_")[0] for path in HISTORIES}
    assert {"deposit", "withdrawal", "transfer", "bonus", "refund", "dispute"} <= sagas
    assert len(HISTORIES) >= 60


@pytest.mark.parametrize("path", HISTORIES, ids=[path.stem for path in HISTORIES])
async def test_replay_recorded_history(path: Path) -> None:
    # With the worker's decision guard: a verdict on a signal is in the history (none in those
    # recorded before the guard), and update validators do not run on replay.
    guard = DecisionGuard(Settings().decision_signing_keys)
    await Replayer(workflows=WORKFLOWS, interceptors=[guard]).replay_workflow(load(path))
