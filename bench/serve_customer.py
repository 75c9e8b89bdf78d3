"""``crm-customer`` as the benchmark runs it (``serve --no-workers`` and ``work``, as
``make run`` does): the same CLI, app and workers, with every
contract topic renamed ``$BENCH_TOPIC_PREFIX<name>``, and its full garbage collections
logged to ``$BENCH_GC_LOG``.

The service reads and writes the contract's topics by name; renaming them for the
process keeps a benchmark run out of the topics ``make run``'s services consume (and
their history out of the benchmark), and lets the run delete its topics afterwards.
The names are changed before anything reads them: the views' and policies' subscriptions,
the relay's routes and the dead-letter topic all take the new ones.

A full (generation 2) collection stops the process while it traverses every object; the
log (``<monotonic end time> <pause ms>`` lines) lets the benchmark tell such pauses from
other latency.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

from crm_events.topics import TOPICS


def _log_full_collections(path: str) -> None:
    began = 0.0

    def observe(phase: str, info: dict[str, Any]) -> None:
        nonlocal began
        if info["generation"] == 2:
            now = time.monotonic()
            if phase == "start":
                began = now
            else:  # full collections are seconds apart: opening the file each time is cheap
                with open(path, "a") as log:
                    log.write(f"{now:.3f} {(now - began) * 1000:.1f}\n")

    gc.callbacks.append(observe)


def main() -> None:
    prefix = os.environ["BENCH_TOPIC_PREFIX"]
    for topic in TOPICS:
        object.__setattr__(topic, "name", prefix + topic.name)
    _log_full_collections(os.environ["BENCH_GC_LOG"])
    from crm_customer.main import cli

    cli()


if __name__ == "__main__":
    main()
