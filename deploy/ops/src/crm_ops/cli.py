"""``crm-ops``: the operators' command line.

Every command talks to the genuine servers (addresses from ``CRM_KAFKA_BOOTSTRAP`` and
``CRM_MONGO_URI``, as ``crm-infra`` writes them) and says clearly which one is down.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from crm_backbone.kafka import ensure_topics
from crm_backbone.topic_names import TopicNames

from crm_ops.console import console, folding_table, run
from crm_ops.deadletters import DeadLetter, read_all
from crm_ops.dlq_commands import dlq_app, holding_at
from crm_ops.kafka_state import group_lag, ops_login, verify_topics
from crm_ops.options import DEFAULT_KAFKA, DEFAULT_MONGO, Bootstrap, MongoUri, TopicPrefix
from crm_ops.relay_commands import relay_app
from crm_ops.views_commands import rebuild_view, replay_view

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
topics_app = typer.Typer(no_args_is_help=True, help="The contract's topics on the broker.")
app.add_typer(topics_app, name="topics")
app.add_typer(dlq_app, name="dlq")
app.add_typer(relay_app, name="relay")

# topics ------------------------------------------------------------------------------


@topics_app.command("verify")
def topics_verify(bootstrap: Bootstrap = DEFAULT_KAFKA, topic_prefix: TopicPrefix = "") -> None:
    """Check every contract topic exists with its partitions and settings (exit 1 if not)."""
    specs = TopicNames(topic_prefix).specs()
    checks = run(lambda: verify_topics(bootstrap, specs), bootstrap)
    table = folding_table("topic", "state")
    for check in checks:
        table.add_row(
            check.name, "[green]ok[/green]" if check.ok else "[red]" + "; ".join(check.problems)
        )
    console.print(table)
    if not all(check.ok for check in checks):
        raise typer.Exit(1)


@topics_app.command("create")
def topics_create(bootstrap: Bootstrap = DEFAULT_KAFKA, topic_prefix: TopicPrefix = "") -> None:
    """Create the contract's missing topics."""
    specs = TopicNames(topic_prefix).specs()
    created = run(lambda: ensure_topics(bootstrap, specs, login=ops_login()), bootstrap)
    console.print(f"created: {', '.join(created) or 'none (all present)'}")


# projections -------------------------------------------------------------------------


@app.command("projections")
def projections(
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    namespace: Annotated[str, typer.Option(help="Consumer groups' prefix")] = "crm",
    topic_prefix: TopicPrefix = "",
) -> None:
    """Each consumer group: position and lag per partition, and its last dead letter."""
    dead_letters = TopicNames(topic_prefix).dead_letter

    async def gather() -> tuple[list[Any], dict[str, DeadLetter]]:
        lags = await group_lag(bootstrap, f"{namespace}.")
        last: dict[str, DeadLetter] = {}
        async for letter in read_all(bootstrap, dead_letters):
            last[letter.header("dlq_consumer")] = letter
        return lags, last

    lags, last_errors = run(gather, bootstrap)
    parked = run(lambda: holding_at(mongo_uri), mongo_uri)
    table = folding_table(
        "consumer group", "topic", "partition", "position", "end", "lag", "parked"
    )
    shown: set[str] = set()
    for row in lags:
        waiting = parked.parked_for(row.group)
        parked_column = "" if row.group in shown else f"[yellow]{waiting}" if waiting else "0"
        shown.add(row.group)
        table.add_row(
            row.group,
            row.topic,
            str(row.partition),
            str(row.committed),
            str(row.end),
            f"[yellow]{row.lag}" if row.lag else "0",
            parked_column,
        )
    console.print(table)
    for group in sorted({row.group for row in lags}):
        letter = last_errors.get(group)
        if letter is not None:
            when, code = letter.header("dlq_time"), letter.header("dlq_code")
            console.print(f"{group}: last error {when} [{code}] {letter.header('dlq_reason')}")


# rebuild and replay (crm_ops.views_commands) --------------------------------------------
# Registered after projections: --help lists the commands in the order they are registered.

app.command("rebuild")(rebuild_view)
app.command("replay")(replay_view)
