"""Each process on MongoDB and PostgreSQL as its own user, on the genuine servers.

A service's user reads and writes its own databases and nothing else; a client without
credentials is refused; every service starts (event store, relay, consumers, views) and
the customer service takes a command and shows it in its view with nothing but its own
users. ``crm-ops``'s user reaches the services' databases and rebuilds in its own.

Against servers given without any credentials (no access control in force) the tests
are skipped: there is nothing to prove there.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from crm_backbone.context import command_context
from crm_backbone.credentials import OPS, postgres_dsn
from crm_backbone.readmodel import wait_until_applied
from crm_backbone.runtime import ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_campaign.bootstrap import CampaignSettings
from crm_campaign.bootstrap import bootstrap as campaign_bootstrap
from crm_contactlog.bootstrap import ContactLogSettings
from crm_contactlog.bootstrap import bootstrap as contactlog_bootstrap
from crm_customer.bootstrap import CustomerService, CustomerSettings
from crm_customer.bootstrap import bootstrap as customer_bootstrap
from crm_customer.routes.customers import Registration
from crm_opportunity.bootstrap import OpportunitySettings
from crm_opportunity.bootstrap import bootstrap as opportunity_bootstrap
from local_infra.accounts import SERVICES, provision_postgres
from local_infra.pytest_plugin import NamespaceAccounts, Servers
from pymongo import MongoClient
from pymongo.errors import OperationFailure

pytestmark = pytest.mark.integration

UNAUTHORIZED = 13
SERVICE_SETTINGS: dict[str, tuple[type[ServiceSettings], Callable[[Any], ServiceHandle]]] = {
    "customer": (CustomerSettings, customer_bootstrap),
    "opportunity": (OpportunitySettings, opportunity_bootstrap),
    "campaign": (CampaignSettings, campaign_bootstrap),
    "contact-log": (ContactLogSettings, contactlog_bootstrap),
}


@pytest.fixture(autouse=True)
def access_control(crm_servers: Servers) -> None:
    """Skip when the servers were given without credentials (no access control)."""
    if "@" not in crm_servers.mongo_uri or "@" not in crm_servers.postgres_dsn:
        pytest.skip("servers given without credentials: no access control to prove")


def settings_of(
    process: str, servers: Servers, accounts: NamespaceAccounts, **more: Any
) -> ServiceSettings:
    """``process``'s settings as a deployment gives them: the servers' addresses without
    credentials, and its own passwords."""
    settings_class = SERVICE_SETTINGS[process][0] if process in SERVICE_SETTINGS else None
    return (settings_class or ServiceSettings)(
        kafka_bootstrap=servers.kafka_bootstrap,
        mongo_uri=bare(servers.mongo_uri),
        postgres_dsn=bare(servers.postgres_dsn),
        event_store="postgres",
        **accounts.settings(process),
        **more,
    )


def bare(address: str) -> str:
    """``address`` without its credentials."""
    scheme, _, rest = address.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


@pytest.fixture
def mongo_as() -> Iterator[Any]:
    """Clients of MongoDB as given URIs, closed afterwards."""
    clients: list[MongoClient[dict[str, Any]]] = []

    def connect(uri: str) -> MongoClient[dict[str, Any]]:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=10_000)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def test_a_client_without_credentials_is_refused(crm_servers: Servers, mongo_as: Any) -> None:
    anonymous = mongo_as(bare(crm_servers.mongo_uri))
    with pytest.raises(OperationFailure) as refused:
        anonymous["crm_customer"]["customers"].find_one()
    assert refused.value.code == UNAUTHORIZED
    with pytest.raises(OperationFailure):
        anonymous["crm_customer"]["customers"].insert_one({"_id": "intruder"})
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(bare(crm_servers.postgres_dsn), connect_timeout=10)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reaches_only_its_own_mongo_database(
    service: str,
    crm_servers: Servers,
    namespace_accounts: NamespaceAccounts,
    mongo_as: Any,
) -> None:
    settings = settings_of(service, crm_servers, namespace_accounts)
    client = mongo_as(settings.mongo_client_uri(service))
    own = client[settings.mongo_database(service)]
    own["probe"].insert_one({"_id": "mine"})
    assert own["probe"].find_one({"_id": "mine"}) == {"_id": "mine"}
    others = [settings.mongo_database(other) for other in (*SERVICES, OPS) if other != service]
    mongo_as(crm_servers.mongo_uri)[others[0]]["probe"].insert_one({"_id": "theirs"})
    for other in others:
        with pytest.raises(OperationFailure) as read:
            client[other]["probe"].find_one()
        assert read.value.code == UNAUTHORIZED
        with pytest.raises(OperationFailure) as write:
            client[other]["probe"].insert_one({"_id": "intruder"})
        assert write.value.code == UNAUTHORIZED
    assert client.list_database_names() == [own.name]


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_reaches_only_its_own_postgres_database(
    service: str, crm_servers: Servers, namespace_accounts: NamespaceAccounts
) -> None:
    settings = settings_of(service, crm_servers, namespace_accounts)
    own = settings.postgres_client_dsn(service)
    with psycopg.connect(own, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe (id text PRIMARY KEY)")
        conn.execute("INSERT INTO probe VALUES ('mine')")
        role = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert role == (False, False, False)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute('CREATE DATABASE "not_allowed"')
    for other in SERVICES:
        if other != service:
            elsewhere = postgres_dsn(own, None, settings.mongo_database(other))
            with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
                psycopg.connect(elsewhere, connect_timeout=10)


def test_what_a_superuser_made_in_a_service_database_is_handed_over_to_its_role(
    crm_servers: Servers, namespace_accounts: NamespaceAccounts
) -> None:
    """The layout before roles: the superuser created the store's tables, types and
    functions; provisioning again gives them to the service's role."""
    settings = settings_of("customer", crm_servers, namespace_accounts)
    database = settings.mongo_database("customer")
    function = (
        "CREATE OR REPLACE FUNCTION save_event(t text) RETURNS void LANGUAGE sql "
        "AS $$ INSERT INTO stored_events (topic) VALUES (t) $$"
    )
    with psycopg.connect(
        postgres_dsn(crm_servers.postgres_dsn, None, database), autocommit=True
    ) as conn:
        conn.execute("CREATE TABLE stored_events (id bigserial PRIMARY KEY, topic text)")
        conn.execute("CREATE TYPE event_key AS (originator_id uuid, version int)")
        conn.execute(function)
    passwords = {"customer": namespace_accounts.passwords["customer"]}
    provision_postgres(crm_servers.postgres_dsn, namespace_accounts.namespace, passwords)
    with psycopg.connect(settings.postgres_client_dsn("customer"), autocommit=True) as conn:
        conn.execute(function)
        conn.execute("SELECT save_event('registered')")
        conn.execute("ALTER TYPE event_key ADD ATTRIBUTE position bigint")
        assert conn.execute("SELECT topic FROM stored_events").fetchall() == [("registered",)]


def test_ops_reaches_the_services_databases_and_its_own(
    crm_servers: Servers, namespace_accounts: NamespaceAccounts, mongo_as: Any
) -> None:
    settings = settings_of(OPS, crm_servers, namespace_accounts)
    ops = mongo_as(settings.mongo_client_uri(OPS))
    ops[settings.mongo_database(OPS)]["dead_letter_actions"].insert_one({"_id": "letter"})
    for service in SERVICES:
        live = settings.mongo_database(service)
        scratch = f"{live}__rebuild"
        ops[scratch]["view"].insert_one({"_id": "rebuilt"})
        ops.admin.command("renameCollection", f"{scratch}.view", to=f"{live}.view", dropTarget=True)
        ops.drop_database(scratch)
        assert ops[live]["view"].find_one() == {"_id": "rebuilt"}
    with pytest.raises(OperationFailure) as elsewhere:
        ops["admin"]["system.users"].find_one()
    assert elsewhere.value.code == UNAUTHORIZED


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_runs_with_its_own_users(
    service: str,
    crm_servers: Servers,
    namespace_accounts: NamespaceAccounts,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    """Its event store (tables, LISTEN), its views (indexes), relay and consumers start
    and answer readiness, with nothing but the service's own users."""
    settings = settings_of(
        service, crm_servers, namespace_accounts, topic_prefix=topic_prefix, data_dir=tmp_path
    )
    handle: ServiceHandle = SERVICE_SETTINGS[service][1](settings)
    await handle.runtime.start()
    try:
        for check, ready in handle.runtime.readiness_checks().items():
            assert await ready() is None, check
        if isinstance(handle, CustomerService):
            await a_customer_is_registered_and_viewed(handle)
    finally:
        await handle.close()


async def a_customer_is_registered_and_viewed(customer: CustomerService) -> None:
    customer_id = f"C-{uuid.uuid4().hex[:8]}"
    registration = Registration.model_validate(
        {
            "customer_id": customer_id,
            "customer_type": "individual",
            "name": {"full_name": "Own User"},
            "status": "active",
            "branch_id": "BR-001",
        }
    )
    with command_context(actor="rm-0001"):
        created = customer.application.register(
            customer_id, registration.model_dump(mode="json", exclude={"customer_id", "manager_id"})
        )
    positions = customer.queries.positions
    assert await wait_until_applied(positions, "/crm/customer", customer_id, created.version, 60)


async def test_a_service_without_its_mongodb_password_is_not_ready(
    crm_servers: Servers, tmp_path: Path
) -> None:
    """Readiness proves the service's own access, not only that the server answers (a
    ping answers anyone)."""
    settings = CustomerSettings(
        mongo_uri=bare(crm_servers.mongo_uri),
        namespace=f"t_{uuid.uuid4().hex[:10]}",
        data_dir=tmp_path,
        secrets_dir=tmp_path / "no-secrets",
    )
    handle = customer_bootstrap(settings)
    try:
        reason = await handle.runtime.readiness_checks()["mongodb"]()
    except OperationFailure as refused:
        reason = str(refused)
    finally:
        await handle.close()
    assert reason is not None
    assert "authentication" in reason
