"""Every service's HTTP API fuzzed from its own OpenAPI document, on the genuine servers.

schemathesis generates requests from each service's ``/openapi.json`` (the documented
examples, boundary and invalid values of every parameter and body, then random ones;
derandomized, so a run is repeatable) and sends them over a real socket to the service's
real app, served by uvicorn in a thread of this process, with its event store and
MongoDB database of its own. Every answer goes through all of schemathesis's checks
(no server error, status code, content type, headers and body as documented, invalid
input refused, valid input accepted, ``Allow`` on a 405, ...), plus this module's own:

- a refused write writes nothing: the event store holds no new event after any answer
  other than a 2xx;
- a ``Location`` names, percent-encoded, the resource the answer names;
- a 5xx is never an answer, except a documented 503 ``view-behind`` for a version the
  event store holds (the workers do not run here, so a view never catches up; a
  version that does not exist must be refused at once with a 4xx).

Every request carries a valid token of the genuine Keycloak: in one pass the service's own
service account (role ``crm_service``: the whole book), in another a relationship manager
(``rm-0001``, placed in the organisation as HR's events place them: most records are out
of their book, and answer 404 as if missing), so the inputs reach the routes;
schemathesis's ``ignored_auth`` check sends them again without it and with a made-up one,
expecting 401. The documents declare both ways to authenticate (a bearer token, the
provider's login for ``/docs``) on every operation. The ``Authorization`` header itself is
fuzzed too (:func:`test_no_token_but_a_valid_one_gets_in`): whatever it holds, short of a
valid token, the answer is a 401 problem, never a 5xx.

A closed connection fails the test where it happens (the request raises).
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import schemathesis
from crm_backbone.organisation import OrganisationView
from crm_backbone.runtime import ServiceHandle
from crm_backbone.settings import ServiceSettings
from crm_backbone.testing_identity import Signer, access_claims, b64
from crm_campaign import api as campaign_api
from crm_campaign import bootstrap as campaign_boot
from crm_contactlog import api as contactlog_api
from crm_contactlog import bootstrap as contactlog_boot
from crm_customer import api as customer_api
from crm_customer import bootstrap as customer_boot
from crm_opportunity import api as opportunity_api
from crm_opportunity import bootstrap as opportunity_boot
from crm_simulator.feed import organisation_feed
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from local_infra.harness import serving
from local_infra.pytest_plugin import Servers
from local_infra.tokens import RealmTokens
from pymongo import MongoClient
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import positive_data_acceptance

pytestmark = pytest.mark.integration

SERVICE_ACCOUNT = "service-account"
CALLERS = (SERVICE_ACCOUNT, "rm-0001")
"""Who each pass calls as."""
EXAMPLES_PER_OPERATION = 25
"""Generated requests per operation and phase; about a minute for the four services."""


@dataclass(frozen=True)
class Served:
    """A service's app served in a thread of this process: its URL and the service."""

    url: str
    service: ServiceHandle
    client_id: str
    """The service's own client in the identity provider: its service account calls."""
    caller: str = SERVICE_ACCOUNT
    """Who calls: the service's account (:data:`SERVICE_ACCOUNT`), or a demo user."""

    def headers(self, tokens: RealmTokens) -> dict[str, str]:
        if self.caller == SERVICE_ACCOUNT:
            return tokens.service(self.client_id)
        return tokens.staff(self.caller)

    def stored_events(self) -> int:
        return int(self.service.application.recorder.max_notification_id() or 0)


@dataclass(frozen=True)
class Kind:
    settings: Callable[..., ServiceSettings]
    bootstrap: Callable[[Any], ServiceHandle]
    create_app: Callable[..., FastAPI]


KINDS = {
    "customer": Kind(
        customer_boot.CustomerSettings, customer_boot.bootstrap, customer_api.create_app
    ),
    "opportunity": Kind(
        opportunity_boot.OpportunitySettings,
        opportunity_boot.bootstrap,
        opportunity_api.create_app,
    ),
    "campaign": Kind(
        campaign_boot.CampaignSettings, campaign_boot.bootstrap, campaign_api.create_app
    ),
    "contact-log": Kind(
        contactlog_boot.ContactLogSettings,
        contactlog_boot.bootstrap,
        contactlog_api.create_app,
    ),
}


@contextmanager
def served(
    name: str, servers: Servers, oidc_issuer: str, data_dir: Path, caller: str
) -> Iterator[Served]:
    """Serve service ``name``'s app without its workers on a loopback port, in a thread of
    its own (its own event loop, as a service process has), validating ``oidc_issuer``'s
    tokens and knowing the simulated bank's organisation, until the block ends."""
    kind = KINDS[name]
    started: queue.Queue[Served | BaseException] = queue.Queue()
    stop = threading.Event()
    service_settings = kind.settings(
        kafka_bootstrap=servers.kafka_bootstrap,
        mongo_uri=servers.mongo_uri,
        data_dir=data_dir,
        namespace=f"fuzz_{uuid.uuid4().hex[:10]}",
        oidc_issuer=oidc_issuer,
    )

    place_the_organisation(servers.mongo_uri, service_settings.mongo_database(name))

    async def serve() -> None:
        service = kind.bootstrap(service_settings)
        async with serving(kind.create_app(service, run_workers=False)) as url:
            started.put(Served(url, service, f"crm-{name}", caller))
            await asyncio.to_thread(stop.wait)

    def run() -> None:
        try:
            asyncio.run(serve())
        except BaseException as error:
            started.put(error)

    thread = threading.Thread(target=run, name=f"serve-{name}", daemon=True)
    thread.start()
    first = started.get(timeout=120)
    if isinstance(first, BaseException):
        raise first
    try:
        yield first
    finally:
        stop.set()
        thread.join(timeout=60)
        cleaner: MongoClient[dict[str, Any]]
        with MongoClient(servers.mongo_uri) as cleaner:
            cleaner.drop_database(service_settings.mongo_database(name))


def place_the_organisation(mongo_uri: str, database: str) -> None:
    """The service's org read model as HR's events of the simulated bank make it (the
    organisation view's own handlers; the workers that would consume them do not run)."""
    handlers = OrganisationView().handlers()
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongo_uri) as client:
        for event in organisation_feed(start=datetime(2026, 1, 5, tzinfo=UTC)):
            assert event.envelope is not None
            for update in handlers[event.envelope.type](event.envelope):
                client[database][update.collection].update_one(
                    {"_id": update.document_id}, update.update, upsert=True
                )


@pytest.fixture(
    scope="module",
    params=[(name, caller) for caller in CALLERS for name in sorted(KINDS)],
    ids=lambda param: f"{param[0]}-as-{param[1]}",
)
def service(
    request: pytest.FixtureRequest,
    crm_servers: Servers,
    oidc_issuer: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Served]:
    name, caller = request.param
    data_dir = tmp_path_factory.mktemp(name)
    with served(name, crm_servers, oidc_issuer, data_dir, caller) as running:
        yield running


@pytest.fixture(scope="module")
def openapi(service: Served) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{service.url}/openapi.json")


api = schemathesis.pytest.from_fixture("openapi")


@pytest.fixture(autouse=True)
def _item_node_id(request: pytest.FixtureRequest) -> None:
    """schemathesis 4.32's lazy schemas name each operation's subtest through the test
    item's ``_nodeid``, which pytest 9 items no longer have: give them one to write."""
    request.node._nodeid = request.node.nodeid


@api.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_input_breaks_an_api(
    case: schemathesis.Case[Any], service: Served, realm_tokens: RealmTokens
) -> None:
    wait_briefly(case)
    events_before = service.stored_events()
    token = service.headers(realm_tokens)
    response = case.call(base_url=service.url, headers=token, timeout=30)
    written = service.stored_events() - events_before
    case.validate_response(
        response,
        headers=token,
        excluded_checks=[not_a_server_error, positive_data_acceptance],
        additional_checks=[server_error_unless_view_behind, valid_data_accepted_unless_a_rule],
    )
    if not 200 <= response.status_code < 300:
        assert written == 0, f"{response.status_code} answered, yet {written} event(s) stored"
    assert_location_names_the_resource(response)


VIEW_WAIT_MS = 50
"""How long a read waits for its ``min_version`` here: the views do not run, so a stored
version never comes and a longer wait would only slow the run."""


def wait_briefly(case: schemathesis.Case[Any]) -> None:
    """A read waiting for ``min_version`` waits :data:`VIEW_WAIT_MS` at most: a valid or
    absent (2 s by default) ``wait_ms`` is lowered; an invalid one is sent as it is."""
    query = case.query or {}
    if "min_version" not in query:
        return
    wait_ms = str(query.get("wait_ms", VIEW_WAIT_MS))
    if wait_ms.isdigit() and int(wait_ms) <= 10_000:
        query["wait_ms"] = min(int(wait_ms), VIEW_WAIT_MS)


def server_error_unless_view_behind(ctx: Any, response: Any, case: schemathesis.Case[Any]) -> None:
    """schemathesis's ``not_a_server_error``, letting through only the documented 503
    ``view-behind`` of a read waiting for its ``min_version`` (a version the store holds:
    one it does not is a 409, see the services' API tests)."""
    if response.status_code != 503:
        not_a_server_error(ctx, response, case)
        return
    problem = response.json()
    assert problem["type"] == "/problems/view-behind", problem
    assert "min_version" in (case.query or {}), problem


def valid_data_accepted_unless_a_rule(
    ctx: Any, response: Any, case: schemathesis.Case[Any]
) -> None:
    """schemathesis's ``positive_data_acceptance``, except a 4xx naming a rule the schema
    cannot express (``rule-violation``: a birth date only for individuals;
    ``invalid-cursor``: a cursor this API never gave; ``value_error``: a model's own
    validator, such as assets whose max is above their min). A valid request refused as
    ``invalid-request`` for a schema constraint still fails: the schema and the validation
    disagree."""
    if 400 <= response.status_code < 500:
        problem = response.json()
        errors = problem.get("errors") or [{"type": "value_error"}]
        if problem["type"] != "/problems/invalid-request" or all(
            error["type"] == "value_error" for error in errors
        ):
            return
    positive_data_acceptance(ctx, response, case)


def assert_location_names_the_resource(response: Response) -> None:
    """The last segment of a ``Location`` is, percent-encoded, an id the body names."""
    locations = [
        v for k, values in response.headers.items() if k.lower() == "location" for v in values
    ]
    if not locations:
        return
    *_, last = locations[0].split("/")
    assert urllib.parse.quote(urllib.parse.unquote(last), safe="") == last
    named = {value for value in response.json().values() if isinstance(value, str)}
    assert urllib.parse.unquote(last) in named, (locations, named)


PUBLIC = frozenset({"/healthz", "/readyz", "/metrics", "/asyncapi.json"})
"""What answers without a token: the probes, the metrics and the event contract."""


def test_the_openapi_document_declares_how_to_authenticate(service: Served) -> None:
    """A bearer token, or the provider's login (authorization code with PKCE) for
    ``/docs``, on every operation of the document but the public ones."""
    document = httpx.get(f"{service.url}/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["bearer"]["description"],
    }
    flow = schemes["oidc"]["flows"]["authorizationCode"]
    assert flow["authorizationUrl"].endswith("/protocol/openid-connect/auth"), flow
    assert flow["tokenUrl"].endswith("/protocol/openid-connect/token"), flow
    unsecured = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if path not in PUBLIC
        and {"bearer", "oidc"} - {name for need in operation.get("security", []) for name in need}
    ]
    assert not unsecured, unsecured


def forged_tokens(issuer: str, provider_kid: str) -> st.SearchStrategy[str]:
    """What a caller without a valid token may put after ``Bearer``: text, JWT-shaped
    nonsense, and well-formed tokens that must not pass (unsigned, signed with a key the
    provider does not have, HMAC-signed with a public value, expired, for another
    audience or issuer); some name the provider's own key (``provider_kid``)."""
    printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300)
    segment = st.one_of(printable, st.binary(max_size=200).map(b64))
    header = st.fixed_dictionaries(
        {"alg": st.sampled_from(["none", "None", "HS256", "RS256", "ES256", "PS512", ""])},
        optional={
            "kid": st.one_of(st.text(max_size=40), st.just(provider_kid)),
            "typ": st.sampled_from(["JWT", "at+jwt"]),
            "crit": st.lists(st.text(max_size=5), max_size=2),
        },
    )
    claims = st.builds(
        access_claims,
        iss=st.sampled_from([issuer, issuer + "/", "https://elsewhere.example/realms/crm"]),
        aud=st.sampled_from(["crm-api", ["crm-api"], "account", None]),
        exp=st.integers(min_value=-(2**40), max_value=2**40),
    )
    as_json = st.dictionaries(st.text(), st.text()).map(lambda v: b64(json.dumps(v).encode()))
    shaped = st.builds(
        lambda h, c, sig: f"{b64(json.dumps(h).encode())}.{b64(json.dumps(c).encode())}.{sig}",
        header,
        claims,
        st.one_of(st.just(""), segment),
    )
    foreign = Signer.rsa("not-the-providers")
    signed_elsewhere = st.builds(lambda c: foreign.sign(c), claims)
    return st.one_of(
        printable,
        st.lists(st.one_of(segment, as_json), min_size=1, max_size=5).map(".".join),
        shaped,
        signed_elsewhere,
    )


AUTHORIZATION_SCHEMES = st.sampled_from(["Bearer ", "bearer ", "Bearer  ", "Basic ", "", "Bearer"])


def test_no_token_but_a_valid_one_gets_in(
    service: Served, oidc_issuer: str, realm_tokens: RealmTokens
) -> None:
    """Whatever the ``Authorization`` header holds, short of a valid token (or a valid
    one tampered with), a read and a command answer 401 ``unauthenticated`` problems,
    with a ``Bearer`` challenge; never a 5xx, never a change."""
    valid = realm_tokens.service_token(service.client_id)
    # The last character of the signature may carry only padding bits: not tampered with.
    tampered = st.builds(
        lambda at, char: valid[:at] + char + valid[at + 1 :],
        st.integers(min_value=0, max_value=len(valid) - 2),
        st.sampled_from("AbZ09-_."),
    ).filter(lambda token: token != valid)
    kid = jwt.get_unverified_header(valid)["kid"]
    paths = httpx.get(f"{service.url}/openapi.json").json()["paths"]
    operations = [
        (method.upper(), path)
        for path, methods in paths.items()
        for method in methods
        if "{" not in path and path not in PUBLIC
    ]

    @given(
        scheme=AUTHORIZATION_SCHEMES,
        token=st.one_of(forged_tokens(oidc_issuer, kid), tampered),
        operation=st.sampled_from(operations),
    )
    @settings(max_examples=150, derandomize=True, deadline=None, database=None)
    def refused(scheme: str, token: str, operation: tuple[str, str]) -> None:
        events_before = service.stored_events()
        method, path = operation
        answer = httpx.request(
            method,
            f"{service.url}{path}",
            headers={"Authorization": f"{scheme}{token}".strip()},
            json={},
            timeout=30,
        )
        assert answer.status_code == 401, (answer.status_code, answer.text)
        assert answer.headers["content-type"] == "application/problem+json", answer.headers
        assert answer.json()["type"] == "/problems/unauthenticated", answer.text
        assert answer.headers["www-authenticate"].startswith("Bearer"), answer.headers
        assert service.stored_events() == events_before

    refused()
