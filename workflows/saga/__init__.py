"""What every payment saga shares, one part a module, each standing on the one before:

- `steps`: step options (`LOCAL_STEP`, `DURABLE_LEDGER_STEP`), step failures, `Compensations`.
- `state`: the saga's state, its point of no return, cancels honoured, reset runs.
- `status`: status writes to the payment's row, the saga's state and its search attributes.
- `operator`: an operator's review and resolution.
- `cancel`: a clear end on every path (`clear_end`): cancels and unplanned failures.
- `provider_outcome`: a provider operation's final outcome (failover, webhooks, polls, resends).
- `payment_saga`: `PaymentSaga`, with the steps the sagas share (screening, holds, reversals).
"""

from workflows.saga.cancel import clear_end
from workflows.saga.payment_saga import PaymentSaga
from workflows.saga.steps import (
    DURABLE_LEDGER_STEP,
    LOCAL_STEP,
    STEP_FAILED,
    ProviderOperation,
    error_type,
    provider_call,
    provider_queue,
)

__all__ = [
    "DURABLE_LEDGER_STEP",
    "LOCAL_STEP",
    "STEP_FAILED",
    "PaymentSaga",
    "ProviderOperation",
    "clear_end",
    "error_type",
    "provider_call",
    "provider_queue",
]
