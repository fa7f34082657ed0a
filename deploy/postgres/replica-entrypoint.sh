#!/bin/sh
# The streaming read replica of the compose stack (service db-replica; BREITBAND_DATABASE_READONLY_URL points at
# it). On first start it copies the primary with pg_basebackup (-R writes standby.signal and primary_conninfo),
# then it runs as a hot standby that follows the primary.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h db -p 5432 -U postgres >/dev/null 2>&1; do sleep 1; done
  PGPASSWORD="$REPLICATION_PASSWORD" pg_basebackup -h db -p 5432 -U replicator -D "$PGDATA" -R -X stream -c fast
  chmod 0700 "$PGDATA"
fi
exec postgres -c hot_standby=on -c max_standby_streaming_delay=30s
