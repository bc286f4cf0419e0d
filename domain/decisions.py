"""Decision tokens: the HMAC the API puts on every money decision it sends to a saga.

Temporal lets whoever reaches it send a workflow any update or signal. A saga therefore takes an
operator's decision or a provider's event only with a token that only the API can make: an
HMAC-SHA256, under the installation's decision signing key, over the workflow id, the handler's
name and the decision's whole content (its actor included). Keys rotate: the first key of the
list signs, every key of it verifies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any, TypeVar

# The updates and signals that carry a money decision, by handler name. Not among them: the
# `cancel` update (a cancel from the Temporal UI does the same, by contract) and the dispute's
# `retry` signal (its steps run again by their own keys, deciding nothing new).
SIGNED_UPDATES = frozenset({"review", "resolve", "respond", "forfeit"})
SIGNED_SIGNALS = frozenset({"provider_event", "dispute_event"})

Decision = TypeVar("Decision")


def decision_message(workflow_id: str, handler: str, decision: Any) -> str:
    """What a token signs: the workflow, the handler and every field of the decision but its
    token, as canonical JSON (the same before and after Temporal's round trip)."""
    content = {k: v for k, v in dataclasses.asdict(decision).items() if k != "token"}
    return json.dumps(
        [workflow_id, handler, content], sort_keys=True, separators=(",", ":"), default=str
    )


def token_of(key: str, message: str) -> str:
    """The hex HMAC-SHA256 of the message under one key."""
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


def signed(keys: Sequence[str], workflow_id: str, handler: str, decision: Decision) -> Decision:
    """The decision with its token, made with the first (current) key."""
    message = decision_message(workflow_id, handler, decision)
    return dataclasses.replace(decision, token=token_of(keys[0], message))  # type: ignore[type-var]


def token_is_valid(keys: Sequence[str], message: str, token: str) -> bool:
    """Whether any of the keys made this token for this message."""
    return bool(token and message) and any(
        hmac.compare_digest(token, token_of(key, message)) for key in keys
    )
