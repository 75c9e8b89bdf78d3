"""Entry point: ``crm-contactlog serve`` (the API) and ``work`` (relay and consumers)."""

from __future__ import annotations

from crm_backbone.serve import service_cli
from fastapi import FastAPI

from crm_contactlog.api import create_app
from crm_contactlog.bootstrap import ContactLogSettings, bootstrap

DEFAULT_PORT = 8104


def _create(run_workers: bool) -> FastAPI:
    return create_app(bootstrap(), run_workers=run_workers)


cli = service_cli("contact-log", DEFAULT_PORT, _create, ContactLogSettings(), bootstrap=bootstrap)
