"""Provider routing: which providers to try, in order, for an operation in a currency."""

from __future__ import annotations


def route(routing: dict[str, list[str]], operation: str, currency: str) -> list[str]:
    """The configured order for `operation` ("charge", "payout"), a currency override first."""
    return list(routing.get(f"{operation}:{currency}", routing.get(operation, [])))


def provider_task_queue(task_queue: str, provider: str) -> str:
    """The task queue of one provider's calls: a slow provider fills only its own worker slots."""
    return f"{task_queue}.provider.{provider}"
