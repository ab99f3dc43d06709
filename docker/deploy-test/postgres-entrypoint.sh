#!/bin/bash
# First start on an empty data folder: initdb with the superuser POSTGRES_USER, whose
# password (POSTGRES_PASSWORD) is read from the environment through a pipe, never from a
# file or the command line; the database POSTGRES_DB. Local socket connections are trusted,
# TCP ones need the password (scram-sha-256), as in the official image. Then the command.
set -euo pipefail
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb --username="$user" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
    --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 \
    -D "$PGDATA" >/dev/null
  printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
  if [ "$db" != postgres ]; then
    # Single-user mode: no server, no port, nothing listening yet.
    printf 'CREATE DATABASE "%s" OWNER "%s";\n' "$db" "$user" |
      postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
  echo "postgres-entrypoint: initialised $PGDATA (user $user, database $db)"
fi
exec "$@"
