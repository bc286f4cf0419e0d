"""The reconciliation activity: one settlement window of a provider matched with the ledger."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio import activity

from paysaga.observability.sdk_meter import counter
from paysaga.reconciliation import ReconciliationBooks, RecordedRun, SettlementWindow
from providers.base import CapabilityAbsent, PaymentProvider
from providers.directory import ProviderDirectory

# On the worker's metrics endpoint, by provider (a configured account: bounded).
RECONCILIATION_MISMATCHES_TOTAL = "paysaga_reconciliation_mismatches_total"


@dataclass
class ReconcileInput:
    provider: str
    run_key: str  # the schedule's workflow run and the provider: one record per run


@dataclass
class ReconcileResult:
    provider: str
    lines_checked: int
    mismatches: int
    # The settlement window the run covered, ISO 8601 (no start: the provider's first run).
    window_start: str | None = None
    window_end: str | None = None


class ReconciliationActivities:
    def __init__(
        self,
        books: ReconciliationBooks,
        providers: ProviderDirectory | Mapping[str, PaymentProvider],
        grace: timedelta = timedelta(days=1),
        own_accounts: Callable[[], Awaitable[list[str]]] | None = None,
    ) -> None:
        self._books = books
        self._providers = (
            providers
            if isinstance(providers, ProviderDirectory)
            else ProviderDirectory.of(providers)
        )
        self._grace = grace
        self._own_accounts = own_accounts

    @activity.defn(name="reconciliation.own_accounts")
    async def own_accounts(self) -> list[str]:
        """The merchants' own provider accounts (`pa_...`), each reconciled like the
        installation's providers: disabled ones too, whose payments still settle."""
        return [] if self._own_accounts is None else await self._own_accounts()

    @activity.defn(name="reconciliation.reconcile_provider")
    async def reconcile_provider(self, run: ReconcileInput) -> ReconcileResult:
        """Fetch the provider's next settlement window, match it, record the mismatches."""
        if (recorded := await self._books.recorded_run(run.run_key)) is not None:
            return _result(recorded)  # a retry of a run that was recorded
        since = await self._books.last_window_end(run.provider)
        window = SettlementWindow(run.provider, since, datetime.now(UTC))
        provider = await self._providers.get(run.provider)
        try:
            lines = await provider.settlement_report(since=window.since, until=window.until)
        except CapabilityAbsent:
            # An adapter without settlement reports: nothing to match, no window recorded.
            activity.logger.info("%s has no settlement report to reconcile", run.provider)
            return ReconcileResult(run.provider, 0, 0, None, None)
        # A concurrent run that recorded a window first makes this one fail (WindowMoved) and
        # retry from the new end; a retry after this one was recorded answers the first result.
        mismatches = await self._books.record_window(run.run_key, window, lines, self._grace)
        counter(
            activity.metric_meter(),
            RECONCILIATION_MISMATCHES_TOTAL,
            "Mismatches found by reconciliation, by provider.",
        ).add(mismatches, {"provider": run.provider})
        return _result(
            RecordedRun(run.provider, len(lines), mismatches, window.since, window.until)
        )


def _result(run: RecordedRun) -> ReconcileResult:
    start, end = run.window_start, run.window_end
    return ReconcileResult(
        run.provider,
        run.lines_checked,
        run.mismatches,
        start.isoformat() if start else None,
        end.isoformat() if end else None,
    )
