"""Entry point: ``crm-customer serve`` (the API) and ``work`` (relay and consumers)."""

from __future__ import annotations

from crm_backbone.serve import service_cli
from fastapi import FastAPI

from crm_customer.api import create_app
from crm_customer.bootstrap import CustomerSettings, bootstrap

DEFAULT_PORT = 8101


def _create(run_workers: bool) -> FastAPI:
    return create_app(bootstrap(), run_workers=run_workers)


cli = service_cli("customer", DEFAULT_PORT, _create, CustomerSettings(), bootstrap=bootstrap)
