"""``crm-ops dlq``: dead letters listed with their reasons, shown, redriven or purged."""

from __future__ import annotations

import getpass
import json
from typing import Annotated, Any

import typer
from crm_backbone.credentials import OPS
from crm_backbone.dead_letter_sealing import OpenedLetter, may_hold_personal_data
from crm_backbone.keys.factory import key_sealer
from crm_backbone.masking import mask_payload
from crm_backbone.settings import ServiceSettings
from crm_backbone.topic_names import TopicNames
from crm_events.errors import ContractError
from crm_events.personal import FieldSealer
from crm_events.registry import registry
from pymongo import AsyncMongoClient

from crm_ops.console import console, folding_table, run
from crm_ops.deadletters import (
    DeadLetter,
    DeadLetterLedger,
    Holding,
    SealedLetterError,
    holding,
    purge,
    read_all,
    redrive,
)
from crm_ops.options import (
    DEFAULT_KAFKA,
    DEFAULT_MONGO,
    Bootstrap,
    MongoUri,
    TopicPrefix,
    mongo_client,
)

dlq_app = typer.Typer(no_args_is_help=True, help="Dead letters: inspect, redrive, purge.")
Actor = Annotated[str, typer.Option(help="Who is acting (recorded)")]
Reason = Annotated[str, typer.Option(help="Why (recorded)")]
USER = getpass.getuser()


def ops_sealer(settings: ServiceSettings | None = None) -> FieldSealer | None:
    """What opens what ``crm-ops`` reads sealed (dead letters, a view's records to rebuild):
    the key store, as ``crm-ops``'s own role (it reads keys, never makes nor destroys one);
    None when the deployment seals nothing."""
    settings = settings or ServiceSettings()
    return key_sealer(settings, OPS) if settings.seal_personal_data else None


def _opened(letter: DeadLetter, sealer: FieldSealer | None) -> OpenedLetter | None:
    """The letter opened; None when it is sealed and no key store is configured."""
    try:
        return letter.opened(sealer)
    except SealedLetterError:
        return None


def _body_state(opened: OpenedLetter | None) -> str:
    if opened is None:
        return "sealed"
    return "erased" if opened.erased else "kept"


def _ledger(
    mongo_uri: str, topic_prefix: str = ""
) -> tuple[AsyncMongoClient[dict[str, Any]], DeadLetterLedger]:
    client: AsyncMongoClient[dict[str, Any]] = mongo_client(
        mongo_uri, serverSelectionTimeoutMS=5000
    )
    actions = client["crm_ops"]["dead_letter_actions"]
    return client, DeadLetterLedger(actions, TopicNames(topic_prefix).dead_letter)


async def _letters(
    bootstrap: str, mongo_uri: str, pending_only: bool, topic_prefix: str
) -> tuple[list[DeadLetter], dict[str, dict[str, Any]]]:
    client, ledger = _ledger(mongo_uri, topic_prefix)
    try:
        done = await ledger.done()
    finally:
        await client.close()
    letters = [
        letter
        async for letter in read_all(bootstrap, TopicNames(topic_prefix).dead_letter)
        if not (pending_only and letter.id in done)
    ]
    return letters, done


async def holding_at(mongo_uri: str) -> Holding:
    """What the dead letters hold back, read from the consumers' databases."""
    client, _ = _ledger(mongo_uri)
    try:
        return await holding(client)
    finally:
        await client.close()


@dlq_app.command("list")
def dlq_list(
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    all_letters: Annotated[bool, typer.Option("--all", help="Include redriven and purged")] = False,
    consumer: Annotated[str | None, typer.Option(help="Only this consumer group")] = None,
    topic_prefix: TopicPrefix = "",
) -> None:
    """Dead letters with their reasons (pending ones unless --all)."""
    letters, done = run(
        lambda: _letters(bootstrap, mongo_uri, not all_letters, topic_prefix), bootstrap
    )
    held = run(lambda: holding_at(mongo_uri), mongo_uri)
    sealer = ops_sealer() if any(letter.sealed for letter in letters) else None
    table = folding_table(
        "id", "code", "reason", "from", "consumer", "time", "body", "state", "holds back"
    )
    for letter in letters:
        if consumer and letter.header("dlq_consumer") != consumer:
            continue
        action = done.get(letter.id)
        behind = held.held_by(letter)
        table.add_row(
            letter.id,
            letter.header("dlq_code"),
            letter.header("dlq_reason")[:80],
            f"{letter.header('dlq_topic')}[{letter.header('dlq_partition')}]@"
            f"{letter.header('dlq_offset')}",
            letter.header("dlq_consumer"),
            letter.header("dlq_time")[:19],
            _body_state(_opened(letter, sealer)),
            f"{action['action']} by {action['actor']}" if action else "pending",
            "-" if behind is None else f"its aggregate, {behind} parked",
        )
    console.print(table)


@dlq_app.command("show")
def dlq_show(
    letter_id: Annotated[str, typer.Argument(help="partition:offset in the dead-letter topic")],
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    topic_prefix: TopicPrefix = "",
) -> None:
    """One dead letter: its headers and its body, opened and masked (personal data never
    in clear; a header that may hold some is not printed)."""
    letters, done = run(lambda: _letters(bootstrap, mongo_uri, False, topic_prefix), bootstrap)
    letter = next((item for item in letters if item.id == letter_id), None)
    if letter is None:
        console.print(f"[red]no dead letter {letter_id}[/red]")
        raise typer.Exit(1)
    console.print(f"key: {letter.key!r}")
    opened = _opened(letter, ops_sealer() if letter.sealed else None)
    for name, value in letter.headers:
        shown = value.decode(errors="replace")
        if may_hold_personal_data(name):
            shown = f"{len(value)} bytes, not shown (it may hold personal data)"
        console.print(f"{name}: {shown}")
    body = None if opened is None or opened.erased else shown_body(opened)
    if opened is None:
        console.print("body: sealed, not shown (no key store configured to open it)")
    elif opened.erased:
        console.print("body: erased (its data subject's key is destroyed)")
    elif body is None:
        size = len(letter.value or b"")
        console.print(
            f"body: {size} bytes, not shown (not a payload of a known type: it may "
            "hold personal data)"
        )
    else:
        console.print_json(json.dumps(body))
    if letter.id in done:
        console.print(f"state: {done[letter.id]}")


def shown_body(letter: OpenedLetter) -> dict[str, Any] | None:
    """The opened letter's payload with its personal data masked (``crm_backbone.masking``),
    or None when it is no JSON object of a known event type and version (which fields are
    personal is then unknown)."""
    headers = dict(letter.headers)
    try:
        model = registry.model(
            headers.get("ce_type", b"").decode(), int(headers.get("ce_schemaversion", b""))
        )
        data = json.loads(letter.value or b"")
    except (ContractError, ValueError):
        return None
    return mask_payload(data, model) if isinstance(data, dict) else None


def _act(
    ids: list[str],
    bootstrap: str,
    mongo_uri: str,
    topic_prefix: str,
    *,
    actor: str,
    reason: str,
    send: bool,
) -> None:
    async def work() -> int:
        letters, _ = await _letters(bootstrap, mongo_uri, True, topic_prefix)
        chosen = [letter for letter in letters if letter.id in ids]
        missing = set(ids) - {letter.id for letter in chosen}
        if missing:
            console.print(f"[red]not pending (unknown, redriven or purged): {sorted(missing)}")
            raise typer.Exit(1)
        erased: list[DeadLetter] = []
        if send:
            erased, chosen = _erased_apart(chosen)
            await redrive(bootstrap, chosen, ops_sealer())
        client, ledger = _ledger(mongo_uri, topic_prefix)
        try:
            await purge(client, chosen if not send else erased)
            for letter in erased:
                await ledger.record(letter, "purged", actor, f"subject erased; {reason}")
            for letter in chosen:
                await ledger.record(letter, "redriven" if send else "purged", actor, reason)
        finally:
            await client.close()
        if erased:
            console.print(
                f"[yellow]not redriven, purged: {[letter.id for letter in erased]} (their data "
                "subject was erased: the key that sealed them is destroyed)"
            )
        return len(chosen)

    count = run(work, bootstrap)
    console.print(f"{'redriven' if send else 'purged'}: {count} dead letter(s), by {actor}")


def _erased_apart(letters: list[DeadLetter]) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """(erased, others): a sealed letter is opened to tell; one that cannot be is refused."""
    sealer = ops_sealer() if any(letter.sealed for letter in letters) else None
    erased: list[DeadLetter] = []
    others: list[DeadLetter] = []
    for letter in letters:
        opened = _opened(letter, sealer)
        if opened is None:
            console.print(f"[red]{letter.id} is sealed and no key store is configured")
            raise typer.Exit(1)
        (erased if opened.erased else others).append(letter)
    return erased, others


@dlq_app.command("redrive")
def dlq_redrive(
    ids: Annotated[list[str], typer.Argument(help="partition:offset of each letter")],
    reason: Reason,
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    actor: Actor = USER,
    topic_prefix: TopicPrefix = "",
) -> None:
    """Send dead letters back to their topics (after the fix), recording who did it."""
    _act(ids, bootstrap, mongo_uri, topic_prefix, actor=actor, reason=reason, send=True)


@dlq_app.command("purge")
def dlq_purge(
    ids: Annotated[list[str], typer.Argument(help="partition:offset of each letter")],
    reason: Reason,
    bootstrap: Bootstrap = DEFAULT_KAFKA,
    mongo_uri: MongoUri = DEFAULT_MONGO,
    actor: Actor = USER,
    topic_prefix: TopicPrefix = "",
) -> None:
    """Drop dead letters for good, recording who did it and why."""
    _act(ids, bootstrap, mongo_uri, topic_prefix, actor=actor, reason=reason, send=False)
