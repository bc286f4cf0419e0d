"""The reconciliation activity: one provider's settlement report matched with the ledger."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from paysaga.reconciliation import ReconciliationBooks, find_mismatches, provider_nets
from providers.base import PaymentProvider


@dataclass
class ReconcileInput:
    provider: str
    run_key: str  # the schedule's workflow run and the provider: one record per run


@dataclass
class ReconcileResult:
    provider: str
    lines_checked: int
    mismatches: int


class ReconciliationActivities:
    def __init__(self, books: ReconciliationBooks, providers: dict[str, PaymentProvider]) -> None:
        self._books = books
        self._providers = providers

    @activity.defn(name="reconciliation.reconcile_provider")
    async def reconcile_provider(self, run: ReconcileInput) -> ReconcileResult:
        """Fetch the provider's settlement report, match it, record the mismatches."""
        in_flight = await self._books.payments_in_flight()
        lines = await self._providers[run.provider].settlement_report()
        ledger = await self._books.ledger_nets(run.provider)
        mismatches = find_mismatches(run.provider, provider_nets(lines), ledger, in_flight)
        recorded = await self._books.record_run(run.run_key, run.provider, len(lines), mismatches)
        activity.metric_meter().create_counter(
            "paysaga_reconciliation_mismatches", "mismatches found by reconciliation"
        ).add(len(mismatches), {"provider": run.provider})
        return ReconcileResult(run.provider, len(lines), recorded)
