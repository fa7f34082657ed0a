#!/bin/sh
# The primary of the compose stack: a role for streaming replication and its pg_hba entry (runs once, when the
# database directory is created; docker-entrypoint-initdb.d of the postgis image).
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE ROLE replicator WITH REPLICATION LOGIN PASSWORD '${REPLICATION_PASSWORD}';
SQL
echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
