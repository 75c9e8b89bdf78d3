"""Granting the ACL table (``kafka_acls``) and SCRAM credentials on a broker, as its admin.

aiokafka's admin client has no call for ACLs or SCRAM credentials, so these are Kafka's
own admin requests (CreateAcls v1, DeleteAcls v1, AlterUserScramCredentials v0) built with
aiokafka's protocol types and sent over its client. Both are idempotent: an ACL that exists
is not duplicated, a credential is replaced.

``python -m crm_backbone.kafka_grants`` does it for a deployment whose passwords are in
the environment (docker-compose's ``kafka-access``): each principal's in
:func:`password_variable`, the admin's login in the settings (``CRM_KAFKA_USERNAME``...),
the deployment's topic prefix and namespace as its services have them.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import DescribeAclsRequest_v1
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Array,
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    String,
    TaggedFields,
)
from pydantic import SecretStr

from crm_backbone.kafka_acls import ADMIN, PRINCIPALS, Acl, Operation, Pattern, Resource, acl_table
from crm_backbone.settings import ServiceSettings

SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
_SCRAM_SHA_512 = 2
_RESOURCE = {Resource.TOPIC: 2, Resource.GROUP: 3}
_PATTERN = {Pattern.LITERAL: 3, Pattern.PREFIXED: 4}
_OPERATION = {
    Operation.READ: 3,
    Operation.WRITE: 4,
    Operation.CREATE: 5,
    Operation.DESCRIBE: 8,
    Operation.DESCRIBE_CONFIGS: 10,
}
_ALLOW = 3
_ANY = 1
_ANY_HOST = "*"


_ACL_BINDING = (
    ("resource_type", Int8),
    ("resource_name", String("utf-8")),
    ("pattern_type", Int8),
    ("principal", String("utf-8")),
    ("host", String("utf-8")),
    ("operation", Int8),
    ("permission_type", Int8),
)
"""The fields of one ACL binding, as CreateAcls and DeleteAcls (v1) carry them."""


class _CreateAclsResponse(Response):  # type: ignore[misc]
    API_KEY = 30
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("results", Array(("error_code", Int16), ("error_message", String("utf-8")))),
    )


class _CreateAclsRequestV1(RequestStruct):  # type: ignore[misc]
    API_KEY = 30
    API_VERSION = 1
    RESPONSE_TYPE = _CreateAclsResponse
    SCHEMA = Schema(("creations", Array(*_ACL_BINDING)))


class _DeleteAclsResponse(Response):  # type: ignore[misc]
    API_KEY = 31
    API_VERSION = 1
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            Array(
                ("error_code", Int16),
                ("error_message", String("utf-8")),
                (
                    "matching",
                    Array(("error_code", Int16), ("error_message", String("utf-8")), *_ACL_BINDING),
                ),
            ),
        ),
    )


class _DeleteAclsRequestV1(RequestStruct):  # type: ignore[misc]
    API_KEY = 31
    API_VERSION = 1
    RESPONSE_TYPE = _DeleteAclsResponse
    SCHEMA = _CreateAclsRequestV1.SCHEMA


class _AlterScramResponse(Response):  # type: ignore[misc]
    API_KEY = 51
    API_VERSION = 0
    FLEXIBLE_VERSION = True
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _AlterScramRequestV0(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = _AlterScramResponse
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class _Prepared(Request[Any]):  # type: ignore[misc]
    """A request of one version only, already built."""

    API_KEY: ClassVar[int] = -1

    def __init__(self, struct: RequestStruct) -> None:
        self.struct = struct

    def build(self, request_struct_class: type[Any]) -> Any:
        return self.struct

    def prepare(self, versions: dict[int, tuple[int, int]]) -> Any:
        low, high = versions.get(self.struct.API_KEY, (0, -1))
        if not low <= self.struct.API_VERSION <= high:
            raise RuntimeError(
                f"the broker does not speak {type(self.struct).__name__} "
                f"(API {self.struct.API_KEY}: versions {low}..{high})"
            )
        return self.struct


def _binding(acl: Acl) -> tuple[int, str, int, str, str, int, int]:
    return (
        _RESOURCE[acl.resource],
        acl.name,
        _PATTERN[acl.pattern],
        f"User:{acl.principal}",
        _ANY_HOST,
        _OPERATION[acl.operation],
        _ALLOW,
    )


def _raise_errors(errors: Iterable[tuple[int, str | None]], what: str) -> None:
    for code, message in errors:
        if code:
            raise for_code(code)(f"{what}: {message}")


def salted_password(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802 ``Hi``) for SHA-512, what the broker stores."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


async def _send(client: AIOKafkaClient, struct: RequestStruct) -> Any:
    node = client.get_random_node()
    if node is None:
        raise RuntimeError("no broker known to send an admin request to")
    return await client.send(node, _Prepared(struct))


async def set_scram_credentials(client: AIOKafkaClient, passwords: Mapping[str, SecretStr]) -> None:
    """Create or replace each user's SCRAM-SHA-512 credential."""
    upsertions: list[tuple[str, int, int, bytes, bytes, dict[int, bytes]]] = []
    for user, password in passwords.items():
        salt = secrets.token_bytes(32)
        salted = salted_password(password.get_secret_value(), salt)
        upsertions.append((user, _SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted, {}))
    response = await _send(client, _AlterScramRequestV0([], upsertions, {}))
    _raise_errors(((r[1], r[2]) for r in response.results), "setting SCRAM credentials")


async def _enforced(client: AIOKafkaClient) -> set[tuple[int, str, int, str, str, int, int]]:
    """Every ACL the broker answered for holds now."""
    request = DescribeAclsRequest_v1(_ANY, None, _ANY, None, None, _ANY, _ANY)
    response = await _send(client, request)
    _raise_errors([(response.error_code, response.error_message)], "describing ACLs")
    return {
        (resource, name, pattern, principal, host, operation, permission)
        for resource, name, pattern, bindings in response.resources
        for principal, host, operation, permission in bindings
    }


async def create_acls(
    client: AIOKafkaClient, acls: Sequence[Acl], *, enforced_within: float = 30.0
) -> None:
    """Create the ACLs (existing ones are left as they are); return once the broker
    enforces them (it applies what its controller committed a moment later)."""
    if not acls:
        return
    response = await _send(client, _CreateAclsRequestV1([_binding(a) for a in acls]))
    _raise_errors(response.results, "creating ACLs")
    wanted = {_binding(acl) for acl in acls}
    async with asyncio.timeout(enforced_within):
        while not wanted <= await _enforced(client):  # noqa: ASYNC110 - the broker pushes no notice
            await asyncio.sleep(0.05)


async def delete_acls(client: AIOKafkaClient, acls: Sequence[Acl]) -> None:
    """Delete exactly these ACLs."""
    if acls:
        response = await _send(client, _DeleteAclsRequestV1([_binding(a) for a in acls]))
        _raise_errors(((r[0], r[1]) for r in response.results), "deleting ACLs")


async def admin_session(bootstrap: str, options: Mapping[str, Any]) -> AIOKafkaClient:
    """A started client (close it) of the admin, ``options`` its login
    (``ServiceSettings.kafka_client_options``)."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, **options)
    await client.bootstrap()
    return client


async def grant(
    bootstrap: str,
    admin_login: Mapping[str, Any],
    passwords: Mapping[str, SecretStr],
    acls: Sequence[Acl],
) -> None:
    """Set the principals' credentials and create the ACLs, as the admin."""
    client = await admin_session(bootstrap, admin_login)
    try:
        if passwords:
            await set_scram_credentials(client, passwords)
        await create_acls(client, acls)
    finally:
        await client.close()


def password_variable(principal: str) -> str:
    """The environment variable holding ``principal``'s password for :func:`main`."""
    return f"CRM_KAFKA_{principal.upper().replace('-', '_')}_PASSWORD"


def main() -> None:
    """Every principal's credential and the deployment's ACL table (docker-compose)."""
    settings = ServiceSettings()
    passwords = {p: SecretStr(os.environ[password_variable(p)]) for p in PRINCIPALS if p != ADMIN}
    acls = acl_table(settings.topic_names(), settings.namespace)
    asyncio.run(
        grant(settings.kafka_bootstrap, settings.kafka_client_options(ADMIN), passwords, acls)
    )


if __name__ == "__main__":
    main()
