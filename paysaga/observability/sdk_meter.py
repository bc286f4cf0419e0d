"""The worker's own metrics through the Temporal SDK's meter, named as Prometheus serves them.

The worker's exporter follows Prometheus' conventions (`install_worker_runtime`): it appends
`_total` to every counter and a unit suffix to any instrument given a unit. So a counter served as
`paysaga_payments_total` is created as `paysaga_payments`, and histograms are created without a
unit, their names already ending in `_seconds`. These helpers take the served name.
"""

from __future__ import annotations

from temporalio.common import MetricCounter, MetricGaugeFloat, MetricHistogramFloat, MetricMeter


def counter(meter: MetricMeter, served_name: str, description: str) -> MetricCounter:
    """The counter served as `served_name` (which ends in `_total`)."""
    if not served_name.endswith("_total"):
        raise ValueError(f"a counter's name ends in _total: {served_name}")
    return meter.create_counter(served_name.removesuffix("_total"), description)


def histogram_seconds(
    meter: MetricMeter, served_name: str, description: str
) -> MetricHistogramFloat:
    """A histogram of durations in seconds, served as `served_name` (ending in `_seconds`)."""
    if not served_name.endswith("_seconds"):
        raise ValueError(f"a duration's name ends in _seconds: {served_name}")
    return meter.create_histogram_float(served_name, description)


def gauge(meter: MetricMeter, served_name: str, description: str) -> MetricGaugeFloat:
    return meter.create_gauge_float(served_name, description)
