"""The webhook events that announce a sandbox operation's outcome, as the sandbox PSP sends them."""

from __future__ import annotations

import json
import secrets
from typing import Any

from sandbox_psp.behaviours import STALE_EVENT_LAG_SECONDS, Behaviour
from sandbox_psp.records import Operation


def webhook_events(operation: Operation, behaviour: Behaviour) -> list[tuple[str, str, float]]:
    """The events `(event_id, body, deliver_at)` announcing the operation's outcome."""
    if not behaviour.webhook:
        return []
    final_view = operation.view(operation.settles_at, settled=True)
    final_id = "evt_" + secrets.token_hex(12)
    final = _event_body(final_id, operation.kind, final_view, operation.settles_at, sequence=2)
    events = [(final_id, final, operation.settles_at)]
    if behaviour.duplicate_webhook:
        pending_view = operation.view(operation.created_at, settled=False)
        pending_id = "evt_" + secrets.token_hex(12)
        stale = _event_body(pending_id, operation.kind, pending_view, operation.created_at, 1)
        events.append((final_id, final, operation.settles_at))
        events.append((pending_id, stale, operation.settles_at + STALE_EVENT_LAG_SECONDS))
    return events


def _event_body(
    event_id: str, kind: str, view: dict[str, Any], created: float, sequence: int
) -> str:
    event = {
        "id": event_id,
        "type": f"{kind}.{view['status']}",
        "created": int(created),
        "sequence": sequence,
        "data": {"operation": view},
    }
    return json.dumps(event, separators=(",", ":"))
