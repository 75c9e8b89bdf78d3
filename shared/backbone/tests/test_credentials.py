"""Each process's account on MongoDB and PostgreSQL, from configuration only."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from crm_backbone.credentials import (
    MONGODB,
    POSTGRESQL,
    Account,
    mongo_uri,
    postgres_dsn,
    read_secret,
)
from crm_backbone.eventstore import EventStoreConfig
from crm_backbone.settings import ServiceSettings
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

MONGO = "mongodb://db.internal:27017/?replicaSet=rs0"
POSTGRES = "postgresql://pg.internal:5432/postgres"


@pytest.fixture(autouse=True)
def no_configured_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRM_MONGO_PASSWORD", "CRM_POSTGRES_PASSWORD", "CRM_SECRETS_DIR"):
        monkeypatch.delenv(name, raising=False)


@given(user=st.text(min_size=1), password=st.text(min_size=1))
def test_any_password_survives_the_address(user: str, password: str) -> None:
    account = Account(user, SecretStr(password))
    for address in (mongo_uri(MONGO, account), postgres_dsn(POSTGRES, account, "crm_customer")):
        url = urlsplit(address)
        assert (unquote(url.username or ""), unquote(url.password or "")) == (user, password)
        assert url.hostname in ("db.internal", "pg.internal")


def test_an_account_replaces_the_credentials_an_address_carried() -> None:
    account = Account("crm_customer", SecretStr("s3cret"))
    uri = mongo_uri("mongodb://admin:other@db.internal:27017/?replicaSet=rs0", account)
    assert urlsplit(uri).netloc == "crm_customer:s3cret@db.internal:27017"
    assert parse_qs(urlsplit(uri).query) == {"replicaSet": ["rs0"], "authSource": ["admin"]}


def test_without_an_account_an_address_is_used_as_given() -> None:
    assert mongo_uri(MONGO, None) == MONGO
    assert postgres_dsn(POSTGRES, None) == POSTGRES


def test_a_secrets_folder_holds_one_file_per_account(tmp_path: Path) -> None:
    (tmp_path / MONGODB).mkdir()
    (tmp_path / MONGODB / "crm_customer").write_text("from-a-file\n")
    assert read_secret(tmp_path, MONGODB, "crm_customer") == SecretStr("from-a-file")
    assert read_secret(tmp_path, MONGODB, "crm_campaign") is None
    assert read_secret(tmp_path, POSTGRESQL, "crm_customer") is None
    assert read_secret(None, MONGODB, "crm_customer") is None


def test_a_service_connects_as_its_own_user_with_the_password_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / MONGODB).mkdir()
    (tmp_path / MONGODB / "crm_contact_log").write_text("file-password")
    monkeypatch.setenv("CRM_SECRETS_DIR", str(tmp_path))
    monkeypatch.setenv("CRM_POSTGRES_PASSWORD", "env-password")
    settings = ServiceSettings(mongo_uri=MONGO, postgres_dsn=POSTGRES, event_store="postgres")
    uri = urlsplit(settings.mongo_client_uri("contact-log"))
    assert (uri.username, uri.password) == ("crm_contact_log", "file-password")
    store = settings.event_store_config("contact-log")
    assert store == EventStoreConfig(
        postgres_dsn="postgresql://crm_contact_log:env-password@pg.internal:5432/crm_contact_log"
    )
    assert "env-password" not in repr(settings)


def test_the_password_variable_wins_over_the_secrets_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / MONGODB).mkdir()
    (tmp_path / MONGODB / "crm_customer").write_text("file-password")
    monkeypatch.setenv("CRM_MONGO_PASSWORD", "env-password")
    settings = ServiceSettings(mongo_uri=MONGO, secrets_dir=tmp_path)
    assert urlsplit(settings.mongo_client_uri("customer")).password == "env-password"


def test_with_no_password_configured_a_service_connects_as_the_address_says() -> None:
    settings = ServiceSettings(mongo_uri=MONGO)
    assert settings.mongo_client_uri("customer") == MONGO
