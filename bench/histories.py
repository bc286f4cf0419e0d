"""What a saga costs Temporal, from its history: workflow tasks, events, activities, markers...

A client with the default data converter reads any history: the payloads stay encrypted (the
codec is the API's and the worker's), and only the events' types and a child's id are read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.client import Client

from paysaga.temporal_connection import connect_temporal

COUNTED = {
    "workflow_tasks": "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
    "activity_tasks_scheduled": "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED",
    "local_activity_markers": "EVENT_TYPE_MARKER_RECORDED",
    "search_attribute_upserts": "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES",
    "signals": "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
    "updates": "EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
    "child_workflows": "EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED",
    "timers": "EVENT_TYPE_TIMER_STARTED",
    "workflow_task_failures": "EVENT_TYPE_WORKFLOW_TASK_FAILED",
    "workflow_task_timeouts": "EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT",
}
"""Figure -> the event type counted for it, per history."""


def sample(ids: Sequence[str], size: int) -> list[str]:
    """`size` ids spread evenly over `ids` (all of them if there are fewer)."""
    if size <= 0 or not ids:
        return []
    if len(ids) <= size:
        return list(ids)
    if size == 1:
        return [ids[0]]
    step = (len(ids) - 1) / (size - 1)
    return [ids[round(n * step)] for n in range(size)]


async def _one(client: Client, workflow_id: str) -> dict[str, Any]:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    names = [EventType.Name(event.event_type) for event in history.events]
    counts: dict[str, Any] = {
        figure: names.count(event_type) for figure, event_type in COUNTED.items()
    }
    counts["events"] = len(names)
    counts["closed"] = bool(names) and names[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    children = [
        event.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for event in history.events
        if EventType.Name(event.event_type) == COUNTED["child_workflows"]
    ]
    counts["children"] = children
    counts["failure_causes"] = [
        WorkflowTaskFailedCause.Name(
            event.workflow_task_failed_event_attributes.cause
        ).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
        for event in history.events
        if EventType.Name(event.event_type) == COUNTED["workflow_task_failures"]
    ]
    return counts


async def histories(client: Client, workflow_ids: Sequence[str]) -> dict[str, Any]:
    """Per saga means of the counts of `COUNTED`, events, and its children's workflow tasks and
    events (a child's tasks are Temporal's work for the saga too, in a history of their own)."""
    if not workflow_ids:
        return {"sampled": 0, "mean": {}}
    own = await asyncio.gather(*(_one(client, w) for w in workflow_ids))
    child_ids = [c for counts in own for c in counts["children"]]
    found = await asyncio.gather(*(_one(client, c) for c in child_ids), return_exceptions=True)
    children = {
        c: counts for c, counts in zip(child_ids, found, strict=True) if isinstance(counts, dict)
    }
    per_saga = []
    for counts in own:
        of_children = [children[c] for c in counts["children"] if c in children]
        row = {k: v for k, v in counts.items() if k not in ("children", "failure_causes")}
        row["child_workflow_tasks"] = sum(c["workflow_tasks"] for c in of_children)
        row["child_events"] = sum(c["events"] for c in of_children)
        row["child_activity_tasks_scheduled"] = sum(
            c["activity_tasks_scheduled"] for c in of_children
        )
        row["workflow_tasks_with_children"] = row["workflow_tasks"] + row["child_workflow_tasks"]
        per_saga.append(row)
    figures = [k for k in per_saga[0] if k != "closed"]
    causes: dict[str, int] = {}
    for counts in own:
        for cause in counts["failure_causes"]:
            causes[cause] = causes.get(cause, 0) + 1
    return {
        "sampled": len(per_saga),
        "workflow_task_failure_causes": causes,
        "closed": sum(row["closed"] for row in per_saga),
        "mean": {k: sum(row[k] for row in per_saga) / len(per_saga) for k in figures},
        "max": {k: max(row[k] for row in per_saga) for k in figures},
        "workflow_ids": list(workflow_ids),
    }


async def fetch(address: str, namespace: str, workflow_ids: Sequence[str]) -> dict[str, Any]:
    """`histories` with a client of its own."""
    client = await connect_temporal(address=address, namespace=namespace)
    return await histories(client, workflow_ids)
