"""Entry point: ``crm-opportunity serve`` (the API) and ``work`` (relay and consumers)."""

from __future__ import annotations

from crm_backbone.serve import service_cli
from fastapi import FastAPI

from crm_opportunity.api import create_app
from crm_opportunity.bootstrap import OpportunitySettings, bootstrap

DEFAULT_PORT = 8102


def _create(run_workers: bool) -> FastAPI:
    return create_app(bootstrap(), run_workers=run_workers)


cli = service_cli("opportunity", DEFAULT_PORT, _create, OpportunitySettings(), bootstrap=bootstrap)
