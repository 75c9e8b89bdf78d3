#!/usr/bin/env bash
# Installs what the project needs from outside Python on a fresh Debian machine:
# a JDK and Maven (to fetch and run Apache Kafka), a Java 21+ for Keycloak, PostgreSQL's
# server, Node.js/npm (the AsyncAPI validator), curl (the README's token calls) and uv.
# Idempotent: does nothing when all are present.
set -euo pipefail

# The major version of the Java installed at $1 (its release file), 0 when unknown.
java_major() {
  local version
  version=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$1/release" 2>/dev/null || true)
  echo "${version:-0}"
}

# Keycloak needs Java 21 or newer: JAVA_HOME, or any JDK/JRE under /usr/lib/jvm.
has_java_21() {
  local home
  for home in ${JAVA_HOME:-} /usr/lib/jvm/*; do
    if [ -x "$home/bin/java" ] && [ "$(java_major "$home")" -ge 21 ]; then return 0; fi
  done
  return 1
}

missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null || missing+=(postgresql)
command -v npm >/dev/null || missing+=(nodejs npm)
command -v curl >/dev/null || missing+=(curl)

if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  export DEBIAN_FRONTEND=noninteractive
  "${apt_get[@]}" update -qq
  "${apt_get[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package starts a cluster of its own on 5432; the project runs its own.
  if command -v pg_lsclusters >/dev/null; then
    pg_lsclusters -h 2>/dev/null | while read -r version name _; do
      pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
    done
  fi
fi

if ! has_java_21; then
  # Debian 12 carries Java 17 only; newer releases carry 21 and 25.
  if [ "$(id -u)" -eq 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
  "${apt_get[@]}" update -qq
  for package in openjdk-25-jre-headless openjdk-21-jre-headless; do
    if apt-cache policy "$package" 2>/dev/null | grep -q 'Candidate: [0-9]'; then
      echo "bootstrap: installing $package (Keycloak needs Java 21+)"
      DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq --no-install-recommends \
        "$package" >/dev/null
      break
    fi
  done
  has_java_21 || echo "bootstrap: no Java 21+ found or offered by the package sources;" \
    "Keycloak (make run, the integration tests) needs one: point JAVA_HOME at it" >&2
fi

if ! command -v uv >/dev/null; then
  echo "bootstrap: installing uv"
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
fi
