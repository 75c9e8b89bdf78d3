"""``crm-customer`` as the benchmark runs it (``serve --no-workers`` and ``work``, as
``make run`` does): the same CLI, app and workers, configured by the environment the
benchmark gives it (its own ``CRM_TOPIC_PREFIX`` keeps the run out of the topics
``make run``'s services consume, and lets it delete its topics afterwards), with its full
garbage collections logged to ``$BENCH_GC_LOG``. With ``BENCH_TOKENS=unchecked`` its API
reads tokens without validating them (``bench/unchecked_tokens.py``), the benchmark's
"without token validation".

A full (generation 2) collection stops the process while it traverses every object; the
log (``<monotonic end time> <pause ms>`` lines) lets the benchmark tell such pauses from
other latency.
"""

from __future__ import annotations

import gc
import os
import time
from typing import Any

import typer
from fastapi import FastAPI


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


def _unchecked_cli() -> typer.Typer:
    """``crm-customer``'s command line whose API takes tokens unchecked."""
    from crm_backbone.serve import service_cli
    from crm_customer.api import create_app
    from crm_customer.bootstrap import CustomerSettings, bootstrap
    from crm_customer.main import DEFAULT_PORT

    from bench.unchecked_tokens import unchecked_authentication

    def create(run_workers: bool) -> FastAPI:
        service = bootstrap()
        authentication = unchecked_authentication(service)
        return create_app(service, run_workers=run_workers, authentication=authentication)

    return service_cli("customer", DEFAULT_PORT, create, CustomerSettings(), bootstrap=bootstrap)


def main() -> None:
    _log_full_collections(os.environ["BENCH_GC_LOG"])
    if os.environ.get("BENCH_TOKENS") == "unchecked":
        _unchecked_cli()()
        return
    from crm_customer.main import cli

    cli()


if __name__ == "__main__":
    main()
