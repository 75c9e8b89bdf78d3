"""Keycloak, the OpenID Connect provider, in development mode with the CRM's realm.

The distribution (Maven Central's ``keycloak-quarkus-dist`` zip) is fetched and unpacked
once into the cache, where Keycloak's first start also leaves its build (``lib/quarkus``),
so every profile, and CI with its cache, builds it once. Each profile gets a home of its
own in its state folder: ``bin/`` copied (``kc.sh`` takes its home from its own path),
the rest linked to the cache, and ``data/``, the database. The realm file under
``deploy/keycloak/`` is imported at start; Keycloak skips a realm it already holds, so
when the file has changed since the database was made, the database is dropped before
the start and the realm imported afresh.

The realm file holds no secret: the launcher writes the imported copy (mode 600) with the
profile's own, made at random into its secrets folder (``keycloak/<client id>`` for each
confidential client, ``keycloak/demo-staff`` for every demo user,
``keycloak/admin`` for the master realm's administrator).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import httpx
from crm_backbone.credentials import DEMO_STAFF, KEYCLOAK
from pydantic import SecretStr

from local_infra.accounts import LocalSecrets
from local_infra.paths import CACHE_DIR, KEYCLOAK_REALM_FILE
from local_infra.process import InfraError
from local_infra.servers import Server, _require

KEYCLOAK_VERSION = "26.7.3"
REALM = "crm"
MINIMUM_JAVA = 21
DISTRIBUTION = CACHE_DIR / f"keycloak-{KEYCLOAK_VERSION}"
SHARED_PARTS = ("lib", "conf", "providers", "themes", "version.txt")
"""What every profile's home links to in the cache (``lib`` holds the build)."""
JVM_FOLDER = Path("/usr/lib/jvm")
ADMIN = "admin"
"""The master realm's administrator (``keycloak/admin`` in the secrets folder)."""
TOKEN_CLIENT = "crm-cli"
"""The realm's public client with the password grant (local profiles only)."""


class KeycloakServer(Server):
    """Keycloak's own distribution, ``kc.sh start-dev`` on loopback, realm ``crm``."""

    name = "keycloak"
    start_timeout = (
        300.0  # the first start builds the server (about 20-30 s, more on a busy machine)
    )

    def __init__(self, state_dir: Path, port: int) -> None:
        super().__init__(state_dir, port)
        self.distribution = self.home / f"keycloak-{KEYCLOAK_VERSION}"
        self.data_dir = self.distribution / "data"
        self.imported_realm = self.data_dir / "import" / KEYCLOAK_REALM_FILE.name
        self.secrets = LocalSecrets(state_dir)

    @property
    def address(self) -> str:
        """The realm's issuer: tokens name it in ``iss``; its discovery document is below it."""
        return f"http://127.0.0.1:{self.port}/realms/{REALM}"

    @property
    def discovery_url(self) -> str:
        return f"{self.address}/.well-known/openid-configuration"

    def version(self) -> str:
        # version.txt reads "Keycloak - Version 26.7.3"
        text = (self.distribution / "version.txt").read_text().strip()
        return f"Keycloak {text.rsplit(' ', 1)[-1]}"

    def prepare(self) -> None:
        if self.pid() is not None:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        install_distribution()
        for stale in self.home.glob("keycloak-*"):
            if stale != self.distribution:
                shutil.rmtree(stale)  # an earlier version's home and database
        self._make_home()
        self.install_realm(with_secrets(KEYCLOAK_REALM_FILE.read_bytes(), self.secrets))

    def install_realm(self, realm: bytes) -> None:
        """Put the realm file where ``--import-realm`` reads it; drop the database when it
        was made from another version of the file (the import skips an existing realm)."""
        if self.imported_realm.exists() and self.imported_realm.read_bytes() != realm:
            shutil.rmtree(self.data_dir / "h2", ignore_errors=True)
        self.imported_realm.parent.mkdir(parents=True, exist_ok=True)
        self.imported_realm.touch(mode=0o600)
        self.imported_realm.write_bytes(realm)

    def _make_home(self) -> None:
        """This profile's Keycloak home: ``bin/`` copied, the built server linked."""
        if not (self.distribution / "bin").exists():
            staging = self.distribution / "bin.copying"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(DISTRIBUTION / "bin", staging)
            staging.rename(self.distribution / "bin")
        for name in SHARED_PARTS:
            link = self.distribution / name
            if not link.is_symlink():
                link.symlink_to(DISTRIBUTION / name)

    def _launch(self) -> None:
        java = java_home()
        argv = [
            str(self.distribution / "bin" / "kc.sh"),
            "start-dev",
            f"--http-port={self.port}",
            "--http-host=127.0.0.1",
            # A fixed issuer, whether a client calls 127.0.0.1 or localhost.
            f"--hostname=http://127.0.0.1:{self.port}",
            "--import-realm",
        ]
        env = os.environ | {
            "JAVA_HOME": str(java),
            "PATH": f"{java / 'bin'}:{os.environ.get('PATH', '')}",
            "KC_BOOTSTRAP_ADMIN_USERNAME": "admin",
            "KC_BOOTSTRAP_ADMIN_PASSWORD": admin_password(self.secrets).get_secret_value(),
        }
        process = self._spawn(argv, cwd=self.home, env=env)
        self.pid_file.write(process.pid)

    def _answers(self) -> bool:
        try:
            answer = httpx.get(self.discovery_url, timeout=3)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json().get("issuer") == self.address


def java_home() -> Path:
    """A Java of version 21 or newer: ``JAVA_HOME`` when it is one, else the newest in
    /usr/lib/jvm (Keycloak 26 runs on nothing older)."""
    candidates = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    installed = JVM_FOLDER.glob("*") if JVM_FOLDER.is_dir() else iter(())
    candidates += sorted(installed, key=java_major, reverse=True)
    for home in candidates:
        if java_major(home) >= MINIMUM_JAVA and os.access(home / "bin" / "java", os.X_OK):
            return home
    raise InfraError(
        f"Keycloak needs Java {MINIMUM_JAVA} or newer; none found (looked at JAVA_HOME and "
        f"{JVM_FOLDER}/*). Run deploy/local/bootstrap.sh, which installs one from Debian's "
        f"packages, or point JAVA_HOME at a JDK {MINIMUM_JAVA}+."
    )


def java_major(home: Path) -> int:
    """The major version a Java installation's ``release`` file names; 0 when unknown."""
    try:
        lines = (home / "release").read_text().splitlines()
    except OSError:
        return 0
    for line in lines:
        if line.startswith("JAVA_VERSION="):
            parts = line.split("=", 1)[1].strip('"').split(".")
            major = parts[1] if parts[0] == "1" else parts[0]  # "1.8.0" is Java 8
            return int(major) if major.isdigit() else 0
    return 0


def fetch_keycloak_zip() -> Path:
    """The distribution zip, resolved from Maven Central once into the cache's repository."""
    repository = CACHE_DIR / "maven"
    artifact = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip"
    path = (
        repository
        / "org/keycloak/keycloak-quarkus-dist"
        / KEYCLOAK_VERSION
        / f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
    )
    if path.exists():
        return path
    mvn = _require("mvn", "install Maven (Debian: maven) to fetch Keycloak")
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            f"-Dmaven.repo.local={repository}",
            "dependency:get",
            f"-Dartifact={artifact}",
            # The zip is all Keycloak needs; resolving its dependencies would follow POMs
            # to repositories other than Maven Central.
            "-Dtransitive=false",
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=CACHE_DIR,  # no project around: Maven reads no pom
    )
    if result.returncode != 0 or not path.exists():
        raise InfraError(f"fetching Keycloak failed:\n{result.stdout[-3000:]}{result.stderr}")
    return path


def install_distribution() -> None:
    """Fetch and unpack Keycloak into the cache once."""
    if not (DISTRIBUTION / "bin" / "kc.sh").exists():
        unpack(fetch_keycloak_zip(), DISTRIBUTION)


def unpack(archive: Path, destination: Path) -> None:
    """Unpack the zip's one top folder as ``destination``, keeping the scripts executable."""
    staging = destination.with_name(f"{destination.name}.unpacking-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(archive) as bundle:
        for member in bundle.infolist():
            target = staging / Path(member.filename).relative_to(Path(member.filename).parts[0])
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, target.open("wb") as sink:
                shutil.copyfileobj(source, sink)
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
    try:
        staging.rename(destination)
    except OSError:  # another launcher unpacked it meanwhile
        shutil.rmtree(staging)


def with_secrets(realm: bytes, secrets: LocalSecrets) -> bytes:
    """The realm file ``realm`` with the profile's secrets: a password for every user that
    is not a service account, a secret for every confidential client."""
    document = json.loads(realm)
    staff = [{"type": "password", "value": staff_password(secrets).get_secret_value()}]
    for user in document.get("users", []):
        if "serviceAccountClientId" not in user:
            user["credentials"] = staff
    for client in document.get("clients", []):
        if client.get("publicClient") is False and not client.get("bearerOnly"):
            client["secret"] = client_secret(secrets, client["clientId"]).get_secret_value()
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def staff_password(secrets: LocalSecrets) -> SecretStr:
    """Every demo user's password (local profiles only: a real realm imports no users)."""
    return secrets.password(KEYCLOAK, DEMO_STAFF)


def client_secret(secrets: LocalSecrets, client_id: str) -> SecretStr:
    return secrets.password(KEYCLOAK, client_id)


def admin_password(secrets: LocalSecrets) -> SecretStr:
    return secrets.password(KEYCLOAK, ADMIN)


def password_grant(issuer: str, username: str, password: str) -> str:
    """An access token for a user of the realm, through the local client ``crm-cli``."""
    return _token(
        issuer,
        {
            "grant_type": "password",
            "client_id": TOKEN_CLIENT,
            "username": username,
            "password": password,
        },
    )


def client_credentials_grant(issuer: str, client_id: str, secret: str) -> str:
    """An access token for a confidential client's service account."""
    return _token(
        issuer,
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


def _token(issuer: str, form: dict[str, str]) -> str:
    answer = httpx.post(f"{issuer}/protocol/openid-connect/token", data=form, timeout=10)
    if answer.status_code != 200:
        raise InfraError(f"the identity provider refused the token request: {answer.text}")
    token: str = answer.json()["access_token"]
    return token
