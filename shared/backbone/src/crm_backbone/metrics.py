"""Prometheus metrics of the backbone: relay position, projection throughput, lag, errors.

Events per second are ``rate()`` of the counters; consumer lag is a gauge per partition.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RELAY_POSITION = Gauge(
    "crm_relay_position", "Last notification id published and recorded", ["application"]
)
RELAY_HEAD = Gauge("crm_relay_store_head", "Highest notification id in the store", ["application"])
RELAY_PUBLISHED = Counter(
    "crm_relay_published_events_total", "Events published to Kafka", ["application"]
)
RELAY_ERRORS = Counter(
    "crm_relay_errors_total", "Relay publish cycles that failed", ["application"]
)
RELAY_LAST_SUCCESS = Gauge(
    "crm_relay_last_success_timestamp_seconds",
    "When the relay last published a batch or found nothing to publish (Unix time)",
    ["application"],
)
RELAY_FAILURES_IN_ROW = Gauge(
    "crm_relay_consecutive_failures",
    "Relay cycles failed since its last success (it is restarted with backoff)",
    ["application"],
)
RELAY_STOPPED = Gauge(
    "crm_relay_stopped",
    "1 while the relay is stopped at a stored event it cannot translate",
    ["application"],
)

PROJECTION_EVENTS = Counter(
    "crm_projection_events_total",
    "Events seen by a projection, by outcome (applied, duplicate, dead_lettered)",
    ["projection", "outcome"],
)
PROJECTION_BATCH_SIZE = Histogram(
    "crm_projection_batch_size",
    "Records per batch",
    ["projection"],
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000),
)
PROJECTION_GAPS = Counter(
    "crm_projection_version_gaps_total",
    "Events whose aggregate version skipped past the next expected one",
    ["projection"],
)
CONSUMER_LAG = Gauge(
    "crm_consumer_lag", "Records behind the partition's end", ["group", "topic", "partition"]
)
DEAD_LETTERS = Counter(
    "crm_dead_letters_total", "Events sent to the dead-letter topic", ["projection", "reason"]
)
POLICY_EVENTS = Counter(
    "crm_policy_events_total", "Events a policy applied (commands issued)", ["policy"]
)
BATCHES_FAILED = Counter(
    "crm_consumer_batches_failed_total",
    "Batches that raised and will be redelivered",
    ["group"],
)
PARKED_RECORDS = Gauge(
    "crm_parked_records",
    "Records parked until what they wait for happens (crm_backbone.parking), per owner",
    ["owner"],
)
ERASED_SUBJECT_RECORDS = Counter(
    "crm_erased_subject_records_dropped_total",
    "Records about an erased customer, dropped instead of stored (an upstream event, a "
    "parked record whose key is destroyed)",
    ["event_type"],
)
HANDLER_ERRORS = Counter(
    "crm_handler_errors_total",
    "Handler calls that raised an unexpected exception (retried, then dead-lettered)",
    ["consumer"],
)
