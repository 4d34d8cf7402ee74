#!/usr/bin/env bash
# Checks the system parts pip cannot install: Java 17+ (Spark), libarchive (archive reading),
# psql (the SQL endpoint's tests connect with it) and the PostgreSQL server (the stack).
# As root it installs what is missing with apt; otherwise it stops with a clear message.
set -euo pipefail

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "error: $1 is missing. Install it (Debian/Ubuntu: sudo apt-get install -y $2) and re-run." >&2
    exit 1
  fi
  echo "Installing $2 (needed for $1)..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

java_major() {
  java -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print (v[1] == "1" ? v[2] : v[1]); exit}'
}

if ! command -v java >/dev/null 2>&1; then
  apt_install "Java 17+ (Spark runs on the JVM)" openjdk-17-jre-headless
fi
major="$(java_major)"
if [ -z "$major" ] || [ "$major" -lt 17 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt_install "Java 17+ (found Java ${major:-unknown})" openjdk-17-jre-headless
    export PATH="/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)/bin:$PATH"
  else
    echo "error: Java 17+ is required, found Java ${major:-unknown}. Install openjdk-17-jre-headless." >&2
    exit 1
  fi
fi

if ! ldconfig -p 2>/dev/null | grep -q 'libarchive\.so\.13'; then
  apt_install "libarchive (fast zip decryption)" libarchive13
fi

if ! command -v psql >/dev/null 2>&1; then
  apt_install "psql (the SQL endpoint is tested with it)" postgresql-client
fi

# PostgreSQL's server binaries: `lakehouse stack up` runs Dagster's storage on it, and the
# instance storage and stack tests start a throwaway server.
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt_install "PostgreSQL (Dagster storage of the stack)" postgresql
fi
