"""The Keycloak launcher's own rules, checked without starting Keycloak."""

from __future__ import annotations

import stat
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from local_infra import keycloak_server
from local_infra.keycloak_server import KeycloakServer, java_home, java_major, unpack
from local_infra.process import InfraError


def fake_java(root: Path, name: str, version: str) -> Path:
    """A Java installation as far as the launcher looks: ``release`` and ``bin/java``."""
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "release").write_text(f'IMPLEMENTOR="Test"\nJAVA_VERSION="{version}"\n')
    java = home / "bin" / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    return home


@given(
    major=st.integers(min_value=9, max_value=99),
    minor=st.integers(min_value=0, max_value=9),
    patch=st.integers(min_value=0, max_value=99),
)
def test_java_major_reads_the_release_file(major: int, minor: int, patch: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        home = fake_java(Path(folder), "jdk", f"{major}.{minor}.{patch}")
        assert java_major(home) == major


def test_java_major_of_java_8_and_of_no_java(tmp_path: Path) -> None:
    assert java_major(fake_java(tmp_path, "old", "1.8.0_392")) == 8
    assert java_major(tmp_path / "nothing") == 0


def test_java_home_prefers_java_home_when_new_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    jvm = tmp_path / "jvm"
    newest = fake_java(jvm, "temurin-25", "25.0.3")
    chosen = fake_java(tmp_path, "mine", "21.0.9")
    monkeypatch.setattr(keycloak_server, "JVM_FOLDER", jvm)
    monkeypatch.setenv("JAVA_HOME", str(chosen))
    assert java_home() == chosen
    monkeypatch.setenv("JAVA_HOME", str(fake_java(tmp_path, "seventeen", "17.0.15")))
    assert java_home() == newest


def test_no_java_21_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jvm = tmp_path / "jvm"
    fake_java(jvm, "java-17", "17.0.15")
    monkeypatch.setattr(keycloak_server, "JVM_FOLDER", jvm)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(InfraError, match=r"Java 21 or newer.*bootstrap\.sh"):
        java_home()


def test_a_changed_realm_file_drops_the_database(tmp_path: Path) -> None:
    server = KeycloakServer(tmp_path, 1)
    database = server.data_dir / "h2"
    server.install_realm(b'{"realm": "crm"}')
    database.mkdir(parents=True)
    server.install_realm(b'{"realm": "crm"}')
    assert database.exists(), "the same realm keeps the database"
    server.install_realm(b'{"realm": "crm", "enabled": true}')
    assert not database.exists(), "another realm is imported afresh"
    assert server.imported_realm.read_bytes() == b'{"realm": "crm", "enabled": true}'


def test_unpack_strips_the_top_folder_and_keeps_scripts_executable(tmp_path: Path) -> None:
    archive = tmp_path / "dist.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        script = zipfile.ZipInfo("keycloak-1/bin/kc.sh")
        script.external_attr = (stat.S_IFREG | 0o755) << 16
        bundle.writestr(script, "#!/bin/sh\n")
        bundle.writestr("keycloak-1/version.txt", "Keycloak - Version 1")
    destination = tmp_path / "cache" / "keycloak-1"
    unpack(archive, destination)
    assert (destination / "version.txt").read_text() == "Keycloak - Version 1"
    assert (destination / "bin" / "kc.sh").stat().st_mode & 0o111
    assert [path.name for path in destination.parent.iterdir()] == ["keycloak-1"]


def test_the_server_names_its_issuer_and_keeps_data_in_its_state_folder(tmp_path: Path) -> None:
    server = KeycloakServer(tmp_path, 28180)
    assert server.address == "http://127.0.0.1:28180/realms/crm"
    assert server.discovery_url.endswith("/realms/crm/.well-known/openid-configuration")
    assert server.data_dir.is_relative_to(tmp_path / "keycloak")
