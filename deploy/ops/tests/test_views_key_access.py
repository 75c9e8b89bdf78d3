"""``crm-ops rebuild`` and ``replay`` open the key store as ``crm-ops``, whose role only
reads keys (least privilege), never as the service whose view they rebuild."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from crm_backbone.credentials import OPS
from crm_backbone.keys import KeySealer
from crm_backbone.keys.memory import InMemoryKeys
from crm_backbone.rebuild import Progress
from crm_backbone.settings import ServiceSettings
from crm_ops import dlq_commands, views_commands


@pytest.mark.parametrize(
    "command",
    [views_commands.rebuild_view, partial(views_commands.replay_view, start="0")],
    ids=["rebuild", "replay"],
)
def test_a_view_is_rebuilt_with_the_keys_crm_ops_reads(
    command: Callable[[str], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    processes: list[str] = []
    sealer = KeySealer(InMemoryKeys())

    def key_sealer(settings: ServiceSettings, process: str) -> KeySealer:
        processes.append(process)
        return sealer

    given: dict[str, Any] = {}

    async def rebuilt(*args: Any, **options: Any) -> Progress:
        given.update(options)
        return Progress(total=0)

    monkeypatch.setattr(dlq_commands, "key_sealer", key_sealer)
    monkeypatch.setattr(views_commands, "rebuild", rebuilt)
    monkeypatch.setattr(views_commands, "replay", rebuilt)
    monkeypatch.setenv("CRM_SEAL_PERSONAL_DATA", "true")

    command("customer_view")

    assert processes == [OPS]
    assert given["sealer"] is sealer
