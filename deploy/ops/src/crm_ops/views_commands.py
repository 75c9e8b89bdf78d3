"""``crm-ops rebuild`` and ``crm-ops replay``: a read model rebuilt from its streams, or
its streams reapplied from a time or an offset."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import typer
from crm_backbone.projection import Projection
from crm_backbone.rebuild import Progress, abort_rebuild, rebuild, replay
from crm_backbone.settings import ServiceSettings
from crm_events.topics import CUSTOMER_EVENTS, HR_ORGANISATION, SUBSCRIPTIONS, Service
from pymongo import AsyncMongoClient
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
from rich.progress import Progress as ProgressBar

from crm_ops.console import console, run
from crm_ops.dlq_commands import ops_sealer
from crm_ops.kafka_state import ops_login
from crm_ops.options import (
    DEFAULT_KAFKA,
    DEFAULT_MONGO,
    Bootstrap,
    MongoUri,
    TopicPrefix,
    mongo_client,
)


@dataclass(frozen=True)
class View:
    service: str
    projection: str  # "module:Class" of the Projection

    def load(self) -> Projection:
        module, _, name = self.projection.partition(":")
        projection: Projection = getattr(importlib.import_module(module), name)()
        return projection


VIEWS = {
    "customer_view": View("customer", "crm_customer.views:CustomerViews"),
    "audit_trail": View("customer", "crm_customer.audit_trail:AuditTrail"),
    "credit_exposure": View("customer", "crm_customer.credit_facilities:CreditFacilitiesView"),
    "contribution": View("customer", "crm_customer.contributions:ContributionsView"),
    "balance_history": View("customer", "crm_customer.balance_history:BalanceHistory"),
    "manager_performance": View("customer", "crm_customer.performance_view:ManagerPerformanceView"),
    "opportunity_view": View("opportunity", "crm_opportunity.views:OpportunityViews"),
    "campaign_tracking": View("campaign", "crm_campaign.views:CampaignTracking"),
    "audience": View("campaign", "crm_campaign.audience:AudienceView"),
    "contact_log_view": View("contact-log", "crm_contactlog.views:ContactLogViews"),
    "derived_tasks": View("contact-log", "crm_contactlog.task_inputs:TaskInputs"),
    "busy_times": View("contact-log", "crm_contactlog.busy_times:BusyTimesView"),
    **{
        f"organisation_view@{service.value}": View(
            service.value, "crm_backbone.organisation:OrganisationView"
        )
        for service, topics in SUBSCRIPTIONS.items()
        if HR_ORGANISATION in topics
    },
    **{
        f"customer_owners@{service.value}": View(
            service.value, "crm_backbone.book:CustomerOwnersView"
        )
        for service, topics in SUBSCRIPTIONS.items()
        if CUSTOMER_EVENTS in topics and service is not Service.CUSTOMER
    },
}
"""Every read model ops can rebuild, by its projection's name (``@service`` for a view
every service keeps in its own database)."""

ViewName = Annotated[str, typer.Argument(help=f"One of: {', '.join(VIEWS)}")]
Namespace = Annotated[str, typer.Option(help="Namespace of databases and consumer groups")]


def _view(name: str) -> tuple[View, Projection]:
    if name not in VIEWS:
        console.print(f"[red]no view {name!r}; known: {', '.join(VIEWS)}")
        raise typer.Exit(1)
    view = VIEWS[name]
    return view, view.load()


def _progress_bar() -> tuple[ProgressBar, Callable[[Progress], None]]:
    bar = ProgressBar(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:,.0f} events/s"),
        TimeRemainingColumn(),
        console=console,
    )
    task = bar.add_task("applying", total=None, rate=0.0)

    def report(progress: Progress) -> None:
        bar.update(task, completed=progress.done, total=progress.total, rate=progress.rate)

    return bar, report


def rebuild_view(
    view_name: ViewName,
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    namespace: Namespace = "crm",
    topic_prefix: TopicPrefix = "",
    keep_old: Annotated[bool, typer.Option(help="Keep the old collections")] = False,
    abort: Annotated[
        bool,
        typer.Option(
            help="Instead: end a rebuild's pause of the live consumer at once and drop the "
            "view it was building (after a rebuild was killed)"
        ),
    ] = False,
) -> None:
    """Rebuild a view from the beginning of its streams; switch once caught up."""
    view, projection = _view(view_name)
    settings = ServiceSettings(namespace=namespace, topic_prefix=topic_prefix)
    live_group = f"{namespace}.{view.service}.{projection.name}"
    if abort:
        _abort_rebuild(
            view_name, mongo_uri, namespace, settings.mongo_database(view.service), live_group
        )
        return

    async def work() -> Progress:
        client: AsyncMongoClient[dict[str, Any]] = mongo_client(mongo_uri, namespace)
        bar, report = _progress_bar()
        try:
            with bar:
                return await rebuild(
                    projection,
                    client[settings.mongo_database(view.service)],
                    bootstrap=bootstrap,
                    login=ops_login(),
                    live_group=live_group,
                    topics=settings.topic_names().of(projection.topics),
                    keep_old=keep_old,
                    report=report,
                    sealer=ops_sealer(settings),  # an erased subject's data reads erased
                )
        finally:
            await client.close()

    done = run(work, bootstrap)
    console.print(
        f"rebuilt {view_name}: {done.done:,} events at {done.rate:,.0f} events/s; "
        f"{done.set_aside} could not be applied (already dead-lettered by the live consumer)"
    )


def _abort_rebuild(
    view_name: str, mongo_uri: str, namespace: str, database: str, live_group: str
) -> None:
    async def work() -> Any:
        client: AsyncMongoClient[dict[str, Any]] = mongo_client(mongo_uri, namespace)
        try:
            return await abort_rebuild(client[database], live_group)
        finally:
            await client.close()

    aborted = run(work, mongo_uri)
    console.print(
        f"{view_name}: "
        + ("pause ended, the live consumer goes on" if aborted.pause_ended else "no pause on")
        + "; "
        + ("half-built view dropped" if aborted.scratch_dropped else "no half-built view")
    )


def replay_view(
    view_name: ViewName,
    start: Annotated[str, typer.Option("--from", help="ISO time, or an offset (integer)")],
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    namespace: Namespace = "crm",
    topic_prefix: TopicPrefix = "",
) -> None:
    """Reapply a view's streams from a time or an offset (safe: the view is idempotent)."""
    view, projection = _view(view_name)
    settings = ServiceSettings(namespace=namespace, topic_prefix=topic_prefix)
    since_ms, offset = None, None
    if start.isdigit():
        offset = int(start)
    else:
        since_ms = int(datetime.fromisoformat(start).timestamp() * 1000)

    async def work() -> Progress:
        client: AsyncMongoClient[dict[str, Any]] = mongo_client(mongo_uri, namespace)
        bar, report = _progress_bar()
        try:
            with bar:
                return await replay(
                    projection,
                    client[settings.mongo_database(view.service)],
                    bootstrap=bootstrap,
                    login=ops_login(),
                    consumer_group=f"{namespace}.{view.service}.{projection.name}",
                    topics=settings.topic_names().of(projection.topics),
                    since_ms=since_ms,
                    from_offset=offset,
                    report=report,
                    sealer=ops_sealer(settings),  # an erased subject's data reads erased
                )
        finally:
            await client.close()

    done = run(work, bootstrap)
    console.print(f"replayed {view_name}: {done.done:,} events at {done.rate:,.0f} events/s")
