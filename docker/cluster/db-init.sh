#!/bin/bash
# One-shot before the migrations: waits for whichever Patroni node takes writes and makes
# the application's database there when it is missing (Patroni's bootstrap makes only the
# cluster and its roles). The password comes from PGPASSWORD, never from the command line.
#   IVR_PG_HOSTS=pg1,pg2 IVR_PG_PORTS=5432,5432 PGUSER=ivr12333 IVR_PG_DATABASE=ivr12333
set -euo pipefail
: "${PGPASSWORD:?PGPASSWORD is required}"
db="${IVR_PG_DATABASE:?}"
[[ "$db" =~ ^[a-z0-9_]+$ ]] || { echo "db-init: bad database name" >&2; exit 2; }
conn="host=${IVR_PG_HOSTS:?} port=${IVR_PG_PORTS:?} user=${PGUSER:?} dbname=postgres"
conn="$conn target_session_attrs=read-write connect_timeout=3"
for _ in $(seq 1 "${IVR_PG_WAIT_SECONDS:-180}"); do
  if psql "$conn" -AtXc 'SELECT 1' >/dev/null 2>&1; then
    if [ -z "$(psql "$conn" -AtXc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
      psql "$conn" -X -v ON_ERROR_STOP=1 -c "CREATE DATABASE \"$db\""
      echo "db-init: made database $db"
    else
      echo "db-init: database $db exists"
    fi
    exit 0
  fi
  sleep 1
done
echo "db-init: no node took writes" >&2
exit 1
