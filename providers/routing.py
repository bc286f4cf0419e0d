"""Provider routing: which providers to try, in order, for an operation in a currency."""

from __future__ import annotations


def route(routing: dict[str, list[str]], operation: str, currency: str) -> list[str]:
    """The configured order for `operation` ("charge", "payout"), a currency override first."""
    return list(routing.get(f"{operation}:{currency}", routing.get(operation, [])))


OWN_ACCOUNTS_QUEUE = "own-accounts"


def provider_task_queue(task_queue: str, provider: str) -> str:
    """The task queue of one provider's calls: a slow provider fills only its own worker slots.

    Merchants' own accounts (`pa_...`, created at run time) share one queue, which every worker
    polls beside the installation's providers' queues.
    """
    if provider.startswith("pa_"):
        return f"{task_queue}.provider.{OWN_ACCOUNTS_QUEUE}"
    return f"{task_queue}.provider.{provider}"
