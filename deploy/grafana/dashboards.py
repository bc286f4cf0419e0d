"""paysaga's Grafana dashboards as code (grafana-foundation-sdk); `make dashboards` writes them to
deploy/grafana/dashboards/<uid>.json, which Grafana in docker-compose loads (provisioning).

Each panel is a title, a unit and its PromQL queries. tests/observability/test_dashboards.py
checks that the committed JSON is what this file generates, and that every query returns series
from a real Prometheus scraping the test stack. Jobs, as deploy/prometheus/prometheus.yml names
them: `paysaga-api`, `paysaga-worker`. The API's gauges read from PostgreSQL are the same on every
API process: panels take their `max`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.timeseries import Panel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")  # provisioning/datasources
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    queries: tuple[tuple[str, str], ...]  # (PromQL, legend)


def p99(histogram: str, by: str, selector: str = "") -> str:
    return (
        f"histogram_quantile(0.99, sum by (le, {by}) (rate({histogram}_bucket{selector}[{RATE}])))"
    )


PAYMENTS = (
    Chart(
        "Payments started by kind (API)",
        "reqps",
        (("sum by (kind) (rate(paysaga_payments_started_total[" + RATE + "]))", "{{kind}}"),),
    ),
    Chart(
        "Payments ended by kind and status",
        "reqps",
        (
            (
                f"sum by (kind, status) (rate(paysaga_payments_total[{RATE}]))",
                "{{kind}} {{status}}",
            ),
        ),
    ),
    Chart(
        "Success ratio by kind",
        "percentunit",
        (
            (
                f'sum by (kind) (rate(paysaga_payments_total{{status="succeeded"}}[{RATE}]))'
                f" / sum by (kind) (rate(paysaga_payments_total[{RATE}]))",
                "{{kind}}",
            ),
        ),
    ),
    Chart(
        "Success ratio by kind and provider account",
        "percentunit",
        (
            (
                "sum by (kind, provider) "
                f'(rate(paysaga_payments_total{{status="succeeded", provider!=""}}[{RATE}]))'
                " / sum by (kind, provider) "
                f'(rate(paysaga_payments_total{{provider!=""}}[{RATE}]))',
                "{{kind}} {{provider}}",
            ),
        ),
    ),
    Chart(
        "Failed by failure code",
        "reqps",
        (
            (
                f'sum by (kind, failure_code) (rate(paysaga_payments_total{{status="failed"}}[{RATE}]))',
                "{{kind}} {{failure_code}}",
            ),
        ),
    ),
    Chart(
        "Time to terminal p99 by kind",
        "s",
        ((p99("paysaga_payment_time_to_terminal_seconds", "kind"), "{{kind}}"),),
    ),
    Chart(
        "Payments waiting by status",
        "short",
        (
            (
                "sum by (status) (max by (status, age_bucket) (paysaga_payments_waiting))",
                "{{status}}",
            ),
        ),
    ),
    Chart(
        "Payments waiting over 15 minutes, by status and age",
        "short",
        (
            (
                "max by (status, age_bucket) "
                '(paysaga_payments_waiting{age_bucket=~"15m_1h|1h_24h|gt_24h"})',
                "{{status}} {{age_bucket}}",
            ),
        ),
    ),
    Chart(
        "API requests by route and status",
        "reqps",
        (
            (
                f"sum by (route, status) (rate(paysaga_http_requests_total[{RATE}]))",
                "{{route}} {{status}}",
            ),
        ),
    ),
)

PROVIDERS = (
    Chart(
        "Requests by account and operation",
        "reqps",
        (
            (
                "sum by (provider_account, operation) "
                f"(rate(paysaga_provider_requests_total[{RATE}]))",
                "{{provider_account}} {{operation}}",
            ),
        ),
    ),
    Chart(
        "Answers by account",
        "reqps",
        (
            (
                "sum by (provider_account, answer) "
                f"(rate(paysaga_provider_requests_total[{RATE}]))",
                "{{provider_account}} {{answer}}",
            ),
        ),
    ),
    Chart(
        "Error ratio by account (unavailable or unknown)",
        "percentunit",
        (
            (
                # `or 0 * ...`: an account without errors shows 0, not a gap.
                "(sum by (provider_account) (rate(paysaga_provider_requests_total"
                f'{{answer=~"unavailable|unknown"}}[{RATE}]))'
                " or 0 * sum by (provider_account) "
                f"(rate(paysaga_provider_requests_total[{RATE}])))"
                " / sum by (provider_account) "
                f"(rate(paysaga_provider_requests_total[{RATE}]))",
                "{{provider_account}}",
            ),
        ),
    ),
    Chart(
        "Latency p99 by account",
        "s",
        (
            (
                p99("paysaga_provider_request_duration_seconds", "provider_account"),
                "{{provider_account}}",
            ),
        ),
    ),
    Chart(
        "Breaker state (0 closed, 1 half-open, 2 open)",
        "short",
        (
            (
                'max by (provider_account) (paysaga_provider_breaker_state{job="paysaga-api"})',
                "{{provider_account}}",
            ),
        ),
    ),
    Chart(
        "Breaker failure rate",
        "percentunit",
        (
            (
                "max by (provider_account) (paysaga_provider_breaker_failure_rate)",
                "{{provider_account}}",
            ),
        ),
    ),
    Chart(
        "Deposits routed, by reason",
        "reqps",
        (("sum by (reason) (rate(paysaga_routing_decisions_total[" + RATE + "]))", "{{reason}}"),),
    ),
)

WALLET = (
    Chart(
        "Wallet calls by type",
        "reqps",
        (("sum by (type) (rate(paysaga_wallet_calls_total[" + RATE + "]))", "{{type}}"),),
    ),
    Chart(
        "Wallet calls p99 (HTTP)",
        "s",
        (
            (
                p99("paysaga_http_request_duration_seconds", "route", '{route=~"/v1/wallet/.*"}'),
                "{{route}}",
            ),
        ),
    ),
    Chart(
        "Refusals by code",
        "reqps",
        (
            (
                'sum by (outcome) (rate(paysaga_wallet_calls_total{outcome!="accepted"}['
                + RATE
                + "]))",
                "{{outcome}}",
            ),
        ),
    ),
    Chart(
        "Batch size (calls per transaction)",
        "short",
        (
            (
                f"sum(rate(paysaga_wallet_batch_calls_sum[{RATE}]))"
                f" / sum(rate(paysaga_wallet_batch_calls_count[{RATE}]))",
                "mean",
            ),
            (p99("paysaga_wallet_batch_calls", "job"), "p99"),
        ),
    ),
    Chart(
        "Batch commit time p99",
        "s",
        ((p99("paysaga_wallet_batch_duration_seconds", "job"), "p99"),),
    ),
)

OUTBOX = (
    Chart(
        "Event deliveries pending",
        "short",
        (("max(paysaga_outbox_pending_deliveries)", "pending"),),
    ),
    Chart(
        "Age of the oldest pending delivery",
        "s",
        (("max(paysaga_outbox_oldest_pending_age_seconds)", "oldest"),),
    ),
    Chart("Dead letters", "short", (("max(paysaga_outbox_dead_letters)", "dead letters"),)),
    Chart(
        "Ledger audit runs by result",
        "short",
        (
            (
                "sum by (result) (increase(paysaga_ledger_audit_runs_total[1h]))",
                "{{result}}",
            ),
        ),
    ),
    Chart(
        "Ledger audit: failing checks and duration",
        "short",
        (
            ("max(paysaga_ledger_audit_failed_checks)", "failing checks"),
            (
                "max(rate(paysaga_ledger_audit_duration_seconds_sum[1h])"
                " / rate(paysaga_ledger_audit_duration_seconds_count[1h]))",
                "seconds per audit",
            ),
        ),
    ),
    Chart(
        "Reconciliation mismatches by provider",
        "short",
        (
            (
                "sum by (provider) (increase(paysaga_reconciliation_mismatches_total[1h]))",
                "{{provider}}",
            ),
        ),
    ),
)

TEMPORAL = (
    Chart(
        "Workflow task schedule-to-start p99",
        "s",
        (
            (
                p99("temporal_workflow_task_schedule_to_start_latency_seconds", "task_queue"),
                "{{task_queue}}",
            ),
        ),
    ),
    Chart(
        "Activity schedule-to-start p99",
        "s",
        (
            (
                p99("temporal_activity_schedule_to_start_latency_seconds", "task_queue"),
                "{{task_queue}}",
            ),
        ),
    ),
    Chart(
        "Workflow task execution p99",
        "s",
        (
            (
                p99("temporal_workflow_task_execution_latency_seconds", "workflow_type"),
                "{{workflow_type}}",
            ),
        ),
    ),
    Chart(
        "Activity execution p99",
        "s",
        (
            (
                p99("temporal_activity_execution_latency_seconds", "activity_type"),
                "{{activity_type}}",
            ),
        ),
    ),
    Chart(
        "Task slots available",
        "short",
        (
            (
                "sum by (worker_type) (temporal_worker_task_slots_available)",
                "{{worker_type}}",
            ),
        ),
    ),
    Chart(
        "Workflows completed by type",
        "reqps",
        (
            (
                f"sum by (workflow_type) (rate(temporal_workflow_completed_total[{RATE}]))",
                "{{workflow_type}}",
            ),
        ),
    ),
)

DATABASE = (
    Chart(
        "Pool connections by process kind and state",
        "short",
        (("sum by (job, state) (paysaga_database_pool_connections)", "{{job}} {{state}}"),),
    ),
    Chart(
        "Requests waiting for a connection",
        "short",
        (("sum by (job) (paysaga_database_pool_requests_waiting)", "{{job}}"),),
    ),
    Chart(
        "Time waited for a connection, API (s/s)",
        "s",
        (("sum(rate(paysaga_database_pool_wait_seconds_total[" + RATE + "]))", "waited"),),
    ),
    Chart(
        "Pool errors",
        "reqps",
        (("sum by (job) (rate(paysaga_database_pool_errors_total[" + RATE + "]))", "{{job}}"),),
    ),
)

DASHBOARDS = {
    "paysaga-payments": ("paysaga: payments", PAYMENTS),
    "paysaga-providers": ("paysaga: providers", PROVIDERS),
    "paysaga-wallet": ("paysaga: game wallet", WALLET),
    "paysaga-outbox": ("paysaga: outbox, audit, reconciliation", OUTBOX),
    "paysaga-temporal": ("paysaga: Temporal workers", TEMPORAL),
    "paysaga-database": ("paysaga: PostgreSQL pools", DATABASE),
}


def build(uid: str, title: str, charts: tuple[Chart, ...]) -> Dashboard:
    dashboard = (
        Dashboard(title)
        .uid(uid)
        .tags(["paysaga", "generated"])
        .refresh("30s")
        .time("now-1h", "now")
    )
    for chart in charts:
        panel = Panel().title(chart.title).unit(chart.unit).datasource(DATASOURCE).height(8)
        panel = panel.span(12)
        for ref, (expr, legend) in zip("ABCDEFGH", chart.queries, strict=False):
            query = Dataquery().expr(expr).legend_format(legend).ref_id(ref)
            panel = panel.with_target(query.datasource(DATASOURCE))
        dashboard = dashboard.with_panel(panel)
    return dashboard


def rendered() -> dict[str, str]:
    """Each dashboard's JSON by file name."""
    encoder = JSONEncoder(sort_keys=True, indent=2)
    return {
        f"{uid}.json": encoder.encode(build(uid, title, charts).build()) + "\n"
        for uid, (title, charts) in DASHBOARDS.items()
    }


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in rendered().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
