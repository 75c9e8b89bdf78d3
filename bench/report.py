"""One table of every figure, its limit or baseline, the ratio and the target; and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REBUILD_EVENTS = 1_000_000


@dataclass
class Figures:
    """Every number one run measured (rates per second, latencies in ms, memory in MB)."""

    produce: float = 0.0
    consume: float = 0.0
    upsert: float = 0.0
    raw_document_bytes: int = 0
    baseline: float = 0.0
    relay_sqlite: float = 0.0
    relay_postgres: float = 0.0
    relay_sqlite_sealed: float = 0.0
    """The same events with personal data sealed (``bench/sealed.py``)."""
    relay_postgres_sealed: float = 0.0
    projection: float = 0.0
    projection_early: float = 0.0
    """Over the events the baseline applies (the first ``baseline_events``)."""
    projection_sealed: float = 0.0
    """The same events, the CRM's personal fields sealed, opened by the projection (the
    mean of its rounds, ``bench/sealed.py``)."""
    projection_clear_beside: float = 0.0
    """The projection in clear again, in rounds alternated with the sealed ones (mean)."""
    view_document_bytes: int = 0
    rebuild: float = 0.0
    rebuilt: int = 0
    rebuild_balance_history: float = 0.0
    """Issue 16's balance history: every balance change of an asset account."""
    rebuilt_balance_history: int = 0
    rebuild_manager_performance: float = 0.0
    """Issue 16's league table: every balance change of any account, and the customers'
    registrations, assignments and status changes (heavier than the balance history)."""
    rebuilt_manager_performance: int = 0
    commands: float = 0.0
    commands_p50: float = 0.0
    commands_p99: float = 0.0
    steady_offered: float = 0.0
    steady_commands_p99: float = 0.0
    to_view_p50: float = 0.0
    to_view_p99: float = 0.0
    to_view_unseen: int = 0
    reads: float = 0.0
    reads_p50: float = 0.0
    reads_p99: float = 0.0
    reads_flow: float = 0.0
    """Core-banking events a second sent through the worker process during the reads."""
    reads_validated: float = 0.0
    reads_validated_p99: float = 0.0
    reads_unchecked: float = 0.0
    """The same reads by an API that takes tokens unchecked (``bench/unchecked_tokens.py``)."""
    reads_unchecked_p99: float = 0.0
    rss: dict[str, tuple[float, float, str]] = field(default_factory=dict)
    """Service process → peak and steady-state RSS, and the phase that ended the steady state."""


@dataclass
class Row:
    figure: str
    ours: str = ""
    reference: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None
    miss: str = ""
    """By how much a target was missed."""
    phase: str = ""
    """The phase that measured it (its CPU use says who had the cores)."""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return ""
        return "yes" if self.met else f"**no**, {self.miss}"


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _size(size: int) -> str:
    return f"{size / 1024:.1f} KB" if size >= 1024 else f"{size} B"


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.01 else f"{fraction:.1%}"


def _short(value: float, target: float) -> str:
    return f"{_percent(1 - value / target)} short"


def _over(value: float, target: float) -> str:
    return f"{_percent(value / target - 1)} over"


def rows(f: Figures, settings: Mapping[str, Any]) -> list[Row]:
    """The table: limits and baseline first, then ours against them and the targets."""
    table = [
        Row(
            "Kafka produce, bare aiokafka (the relay's producer settings)",
            reference=f"{_n(f.produce)} rec/s (limit)",
            phase="produce",
        ),
        Row(
            "Kafka consume, bare aiokafka",
            reference=f"{_n(f.consume)} rec/s (limit)",
            phase="consume",
        ),
        Row(
            "MongoDB unordered bulk upsert, one per event",
            reference=f"{_n(f.upsert)} docs/s (limit)",
            phase="upsert",
        ),
        Row(
            "per-event find-and-update, faststream",
            reference=f"{_n(f.baseline)} ev/s (baseline)",
            phase="baseline",
        ),
    ]
    relays = (("SQLite", "sqlite", f.relay_sqlite), ("PostgreSQL", "postgres", f.relay_postgres))
    for store, key, value in relays:
        table.append(
            Row(
                f"relay, {store} store",
                ours=f"{_n(value)} ev/s",
                reference=f"produce {_n(f.produce)}",
                ratio=f"{value / f.produce:.2f}",
                target="≥ 10,000 ev/s",
                met=value >= 10_000,
                miss=_short(value, 10_000),
                phase=f"relay_{key}",
            )
        )
    table.append(
        Row(
            f"projection into the single customer view (documents of {_size(f.view_document_bytes)}"
            f"; the limit's: {_size(f.raw_document_bytes)})",
            ours=f"{_n(f.projection)} ev/s",
            reference=f"bulk upsert {_n(f.upsert)}",
            ratio=f"{f.projection / f.upsert:.2f}",
            target="≥ 0.70 of the limit",
            met=f.projection >= 0.7 * f.upsert,
            miss=_short(f.projection, 0.7 * f.upsert),
            phase="projection",
        )
    )
    table.append(
        Row(
            f"projection against the per-event baseline, both over the first "
            f"{_n(settings['baseline_events'])} events into an empty view",
            ours=f"{_n(f.projection_early)} ev/s",
            reference=f"baseline {_n(f.baseline)}",
            ratio=f"{f.projection_early / f.baseline:.1f}",
            target="≥ 10 times the baseline",
            met=f.projection_early >= 10 * f.baseline,
            miss=_short(f.projection_early, 10 * f.baseline),
            phase="projection",
        )
    )
    table += _sealed_rows(f)
    seconds = REBUILD_EVENTS / f.rebuild
    measured = "" if f.rebuilt >= REBUILD_EVENTS else " (extrapolated)"
    table.append(
        Row(
            f"rebuild of the view from offset 0 ({_n(f.rebuilt)} events)",
            ours=f"{_n(f.rebuild)} ev/s: 1M in {seconds:.0f} s{measured}",
            reference=f"bulk upsert {_n(f.upsert)}",
            ratio=f"{f.rebuild / f.upsert:.2f}",
            target="1M in ≤ 90 s",
            met=seconds <= 90,
            miss=_over(seconds, 90),
            phase="rebuild",
        )
    )
    table.append(
        Row(
            f"rebuild of the balance history (churn rules) from offset 0 "
            f"({_n(f.rebuilt_balance_history)} account events)",
            ours=f"{_n(f.rebuild_balance_history)} ev/s",
            reference=f"the view's rebuild {_n(f.rebuild)}",
            ratio=f"{f.rebuild_balance_history / f.rebuild:.2f}",
            phase="rebuild_balance_history",
        )
    )
    table.append(
        Row(
            f"rebuild of the league table's read model from offset 0 "
            f"({_n(f.rebuilt_manager_performance)} customer and account events)",
            ours=f"{_n(f.rebuild_manager_performance)} ev/s",
            reference=f"the view's rebuild {_n(f.rebuild)}",
            ratio=f"{f.rebuild_manager_performance / f.rebuild:.2f}",
            phase="rebuild_manager_performance",
        )
    )
    table.append(
        Row(
            f"commands via HTTP ({settings['concurrency']} in flight)",
            ours=f"{_n(f.commands)} cmd/s, p50 {f.commands_p50:.0f} ms, "
            f"p99 {f.commands_p99:.0f} ms",
            phase="commands",
        )
    )
    unseen = f"{f.to_view_unseen} commands never reached the view"
    table.append(
        Row(
            f"command → view at {settings['steady_rate']:g} cmd/s (offered {f.steady_offered:.0f})",
            ours=f"p50 {f.to_view_p50:.0f} ms, p99 {f.to_view_p99:.0f} ms "
            f"(command alone: p99 {f.steady_commands_p99:.0f} ms)",
            target="p99 ≤ 200 ms",
            met=f.to_view_p99 <= 200 and not f.to_view_unseen,
            miss=unseen if f.to_view_unseen else _over(f.to_view_p99, 200),
            phase="steady",
        )
    )
    misses = [f"rate {_short(f.reads, 1500)}"] if f.reads < 1500 else []
    misses += [f"p99 {_over(f.reads_p99, 25)}"] if f.reads_p99 > 25 else []
    table.append(
        Row(
            f"GET /customers/{{id}}/view ({settings['concurrency']} in flight, while "
            f"{f.reads_flow:.0f} events/s flow through the worker process)",
            ours=f"{_n(f.reads)} req/s, p50 {f.reads_p50:.1f} ms, p99 {f.reads_p99:.1f} ms",
            target="≥ 1,500 req/s, p99 ≤ 25 ms",
            met=not misses,
            miss=", ".join(misses),
            phase="reads",
        )
    )
    validation = f.reads_validated / f.reads_unchecked if f.reads_unchecked else 0.0
    table.append(
        Row(
            f"GET /customers/{{id}}/view, token validated ({settings['concurrency']} "
            "relationship managers, nothing flowing)",
            ours=f"{_n(f.reads_validated)} req/s, p99 {f.reads_validated_p99:.1f} ms",
            reference=f"tokens unchecked {_n(f.reads_unchecked)} req/s, "
            f"p99 {f.reads_unchecked_p99:.1f} ms",
            ratio=f"{validation:.2f}",
            target="≥ 0.9 of unchecked",
            met=validation >= 0.9,
            miss=_short(validation, 0.9),
            phase="token_validation",
        )
    )
    for process, (peak, steady, phase) in f.rss.items():
        table.append(
            Row(
                f"RSS, {process}",
                ours=f"{steady:.0f} MB steady, {peak:.0f} MB peak",
                target="≤ 200 MB steady",
                met=steady <= 200,
                miss=_over(steady, 200),
                phase=phase,
            )
        )
    return table


SEALED_TARGET = 0.85
"""Of the rate in clear, with personal data sealed."""


def _sealed_rows(f: Figures) -> list[Row]:
    """Relays and projection with personal data sealed against the same in clear."""
    compared = (
        ("relay, SQLite store", f.relay_sqlite_sealed, f.relay_sqlite, "relay_sqlite_sealed"),
        (
            "relay, PostgreSQL store",
            f.relay_postgres_sealed,
            f.relay_postgres,
            "relay_postgres_sealed",
        ),
        (
            "projection into the single customer view",
            f.projection_sealed,
            f.projection_clear_beside,
            "projection_sealed_1",
        ),
    )
    table = []
    for figure, sealed, clear, phase in compared:
        ratio = sealed / clear if clear else 0.0
        table.append(
            Row(
                f"{figure}, personal data sealed (AES-256-GCM, a key per customer)",
                ours=f"{_n(sealed)} ev/s",
                reference=f"in clear {_n(clear)}",
                ratio=f"{ratio:.2f}",
                target=f"≥ {SEALED_TARGET} of clear",
                met=ratio >= SEALED_TARGET,
                miss=_short(ratio, SEALED_TARGET),
                phase=phase,
            )
        )
    return table


def markdown(table: list[Row]) -> str:
    lines = [
        "| figure | ours | limit / baseline | ours / it | target | met? |",
        "|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(
            f"| {r.figure} | {r.ours} | {r.reference} | {r.ratio} | {r.target} | {r.verdict} |"
        )
    return "\n".join(lines)


def cpu_table(
    cpu: Mapping[str, Mapping[str, float]],
    seconds: Mapping[str, float],
    pauses: Mapping[str, list[float]],
    updated: Mapping[str, float],
) -> str:
    """Cores each process used in each phase (a 2-core machine has 2; "service" is the
    API's process, "worker" its relay and consumers), MongoDB documents updated per event,
    and the API's full garbage collections ("service GCs")."""
    names = sorted({n for used in cpu.values() for n in used}, key=_process_order)
    lines = [
        f"| phase | seconds | {' | '.join(names)} | MongoDB docs updated/event | service GCs |",
        "|---|---" + "|---" * len(names) + "|---|---|",
    ]
    for phase, used in cpu.items():
        cells = " | ".join(f"{used[n]:.2f}" if n in used else "" for n in names)
        docs = f"{updated[phase]:.2f}" if phase in updated else ""
        gcs = pauses.get(phase)
        longest = f"{len(gcs)}, longest {max(gcs):.0f} ms" if gcs else ("0" if gcs == [] else "")
        lines.append(f"| {phase} | {seconds[phase]:.0f} | {cells} | {docs} | {longest} |")
    return "\n".join(lines)


def _process_order(name: str) -> tuple[int, str]:
    order = ["bench", "service", "worker", "kafka", "mongod", "postgres", "other"]
    return (order.index(name) if name in order else len(order), name)


def write(
    out: Path,
    *,
    figures: Figures,
    table: list[Row],
    settings: Mapping[str, Any],
    context: Mapping[str, Any],
) -> Path:
    """``<out>/bench-<time>.json`` and ``<out>/latest.json``; the first's path."""
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "settings": dict(settings),
        **context,
        "figures": asdict(figures),
        "table": [asdict(r) | {"verdict": r.verdict} for r in table],
        "missed": [
            {
                "figure": r.figure,
                "ours": r.ours,
                "target": r.target,
                "by": r.miss,
                "cores_used_meanwhile": context["cpu_cores_used"].get(r.phase, {}),
            }
            for r in table
            if r.met is False
        ],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"bench-{stamp}.json"
    path.write_text(text)
    (out / "latest.json").write_text(text)
    return path
