"""The worker's guard of money decisions: a saga takes only the updates and signals the API signed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities import failures
from domain.decisions import SIGNED_SIGNALS, SIGNED_UPDATES, decision_message, token_is_valid

VERIFY_ACTIVITY = "verify_decision"
# Signals of histories recorded before the guard were taken unverified, and replay so.
SIGNED_SIGNALS_PATCH = "signed-provider-events"


@dataclass
class SignedDecision:
    """A decision's signed message and the token it came with, for the verifying local step."""

    message: str
    token: str


class DecisionActivities:
    """The local step that checks a signal's token, so that its verdict is in the history."""

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(keys)

    @activity.defn(name=VERIFY_ACTIVITY)
    async def verify_decision(self, decision: SignedDecision) -> bool:
        return token_is_valid(self._keys, decision.message, decision.token)


class DecisionGuard(Interceptor):
    """Refuses the money decisions (domain.decisions) that do not carry the API's token.

    Whoever reaches Temporal can send a saga any update or signal: without this, an operator's
    review or resolution would skip the API's ops scope and audit log, and a provider event its
    webhook's HMAC. An update is checked before it is accepted, with its validator (Temporal
    runs that step only for an update that has one: every signed update must): validators do
    not run on replay, so a refusal leaves nothing in the history and a rotated key cannot break
    a replay. A signal has no validator and is always recorded: its token is checked by a
    local step whose answer the history keeps, so that its replay never needs the key again;
    one that fails is logged and ignored.
    """

    def __init__(self, keys: Sequence[str]) -> None:
        self._keys = tuple(keys)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor]:
        keys = self._keys

        class Guarded(_GuardedInbound):
            signing_keys = keys

        return Guarded


class _GuardedInbound(WorkflowInboundInterceptor):
    signing_keys: tuple[str, ...] = ()

    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        if input.update in SIGNED_UPDATES:
            message = _message(input.update, input.args)
            if not token_is_valid(self.signing_keys, message, _token(input.args)):
                raise ApplicationError(
                    f"the {input.update} decision does not carry the API's token",
                    type=failures.DECISION_NOT_SIGNED,
                    non_retryable=True,
                )
        super().handle_update_validator(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        if input.signal in SIGNED_SIGNALS and workflow.patched(SIGNED_SIGNALS_PATCH):
            verified = await workflow.execute_local_activity(
                VERIFY_ACTIVITY,
                SignedDecision(_message(input.signal, input.args), _token(input.args)),
                result_type=bool,
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            if not verified:
                workflow.logger.warning(
                    "%s signal of %s ignored: it does not carry the API's token",
                    input.signal,
                    workflow.info().workflow_id,
                )
                return
        await super().handle_signal(input)


def _message(handler: str, args: Sequence[Any]) -> str:
    """The signed message of a decision sent as the handler's one argument ("" if malformed)."""
    if len(args) != 1 or not hasattr(args[0], "token"):
        return ""
    return decision_message(workflow.info().workflow_id, handler, args[0])


def _token(args: Sequence[Any]) -> str:
    token = getattr(args[0], "token", "") if len(args) == 1 else ""
    return token if isinstance(token, str) else ""
