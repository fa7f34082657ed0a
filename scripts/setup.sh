#!/usr/bin/env bash
# Shared set-up for scripts/run and scripts/test: virtualenv, dependencies, PostgreSQL + PostGIS, Redis, database,
# migrations. Safe to run again: every step checks first. Sourced, not executed.
#
# BREITBAND_DATABASE_URL / BREITBAND_BROKER_URL point at existing servers instead of the local ones; then this
# script neither installs nor starts that server.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
APT_UPDATED=""
apt_install() {
  if [ -z "$APT_UPDATED" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# --- Python -------------------------------------------------------------------------------------------------
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null || ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  log "installing Python 3 (3.11 or newer needed)"
  apt_install python3 python3-venv python3-dev
  PY=python3
fi
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PY" -m venv .venv || { apt_install python3-venv; rm -rf .venv; "$PY" -m venv .venv; }
fi
# WeasyPrint (decision documents) needs Pango from the system (https://doc.courtbouillon.org/weasyprint/stable/
# first_steps.html#linux): installed only when missing.
if ! ldconfig -p 2>/dev/null | grep -q 'libpango-1.0.so' || ! ldconfig -p 2>/dev/null | grep -q 'libpangoft2-1.0.so'; then
  log "installing Pango for WeasyPrint"
  apt_install libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core
fi
# GDAL's command-line tools: the tests open every export with ogrinfo and read the OGC API - Features with
# ogrinfo/ogr2ogr (OAPIF driver), as GIS desks do.
if ! command -v ogrinfo >/dev/null || ! command -v ogr2ogr >/dev/null; then
  log "installing gdal-bin (ogrinfo, ogr2ogr)"
  apt_install gdal-bin
fi
STAMP=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
  log "installing the project and its dependencies into .venv"
  # pip's own output (and setuptools' warnings while it builds) goes to var/log/pip.log; shown when it fails.
  mkdir -p var/log
  .venv/bin/python -m pip install -q --upgrade pip >var/log/pip.log 2>&1 || true
  .venv/bin/python -m pip install -q -e ".[test,bench]" >>var/log/pip.log 2>&1 || true
  .venv/bin/python -c 'import breitband, geo, permits, notifications, fastapi, geoalchemy2, osmium, pyogrio' \
    || { grep -v '^WARNING: Location' var/log/pip.log >&2; echo "dependency installation failed" >&2; exit 1; }
  rm -f .venv/.installed-*; touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"

# --- PostgreSQL + PostGIS -----------------------------------------------------------------------------------
if [ -z "${BREITBAND_DATABASE_URL:-}" ]; then
  if ! command -v pg_lsclusters >/dev/null; then
    log "installing PostgreSQL"
    apt_install postgresql postgresql-contrib
  fi
  PGVER="$(pg_lsclusters -h | awk 'NR==1{print $1}')"
  if [ -z "$PGVER" ]; then
    PGVER="$(ls /usr/lib/postgresql | sort -n | tail -1)"
    $SUDO pg_createcluster "$PGVER" main >/dev/null
  fi
  if [ ! -f "/usr/share/postgresql/$PGVER/extension/postgis.control" ]; then
    log "installing PostGIS for PostgreSQL $PGVER"
    apt_install "postgresql-$PGVER-postgis-3"
  fi
  if ! pg_lsclusters -h | awk -v v="$PGVER" '$1==v && $2=="main"{print $4}' | grep -q online; then
    log "starting PostgreSQL $PGVER"
    $SUDO pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start 2>/dev/null \
      || $SUDO pg_ctlcluster "$PGVER" main start
  fi
  # The default URL connects as "postgres" over TCP without a password (trust, as on developer machines). If the
  # server asks for a password, allow local trust for the loopback address.
  if ! PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -U postgres -d postgres -tAc 'select 1' >/dev/null 2>&1; then
    HBA="/etc/postgresql/$PGVER/main/pg_hba.conf"
    if [ -f "$HBA" ] && ! grep -q '# breitband-local-trust' "$HBA"; then
      log "allowing trust authentication on 127.0.0.1 for local development ($HBA)"
      $SUDO sed -i '1i host all all 127.0.0.1/32 trust # breitband-local-trust\nhost all all ::1/128 trust # breitband-local-trust' "$HBA"
      $SUDO pg_ctlcluster --skip-systemctl-redirect "$PGVER" main reload 2>/dev/null || $SUDO pg_ctlcluster "$PGVER" main reload
    fi
  fi
fi

# --- Redis (the default broker) -----------------------------------------------------------------------------
if [ -z "${BREITBAND_BROKER_URL:-}" ]; then
  if ! command -v redis-server >/dev/null; then
    log "installing Redis"
    apt_install redis-server
  fi
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/breitband.log
    for _ in $(seq 1 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
fi

# --- Web app (web/ → web/dist, served at /) and the browser for the browser tests ----------------------------
# Built with Vite from npm packages (no CDN); rebuilt only when package-lock.json, the sources or the config changed.
if ! command -v npm >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  log "installing Node.js and npm (Node 20.19 or newer needed for Vite 7)"
  apt_install nodejs npm
fi
WEB_LOCK_HASH="$(sha256sum web/package-lock.json | cut -c1-16)"
if [ ! -f "web/node_modules/.breitband-lock-$WEB_LOCK_HASH" ]; then
  log "installing the web app's npm packages (npm ci)"
  # npm ci installs exactly the lock file. A registry mirror without the other platforms' optional packages
  # (esbuild/rollup binaries) yields a lock file npm ci calls out of sync; then install from it without saving.
  (cd web && { npm ci --no-audit --no-fund --loglevel=silent \
    || npm install --no-save --no-audit --no-fund --loglevel=error; })
  touch "web/node_modules/.breitband-lock-$WEB_LOCK_HASH"
fi
WEB_SRC_HASH="$(cd web && find index.html vite.config.js package.json package-lock.json src -type f -print0 | sort -z \
  | xargs -0 sha256sum | sha256sum | cut -c1-16)"
if [ ! -f web/dist/index.html ] || [ ! -f "web/dist/.breitband-src-$WEB_SRC_HASH" ]; then
  log "building the web app (vite build → web/dist)"
  (cd web && npm run --silent build -- --logLevel warn)
  touch "web/dist/.breitband-src-$WEB_SRC_HASH"
fi
if [ ! -x /usr/bin/chromium ]; then
  log "installing Chromium (headless browser for the browser tests)"
  apt_install chromium
fi
