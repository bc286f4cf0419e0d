#!/bin/sh
# Creates and migrates Temporal's two databases (run by the temporal-admin-tools one-shot job).
# Safe to run on every `docker compose up`: existing databases are kept, and update-schema only
# applies the versions a database does not have yet.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
DB_PORT="${DB_PORT:-5432}"
SCHEMA_DIR="${TEMPORAL_HOME:-/etc/temporal}/schema/postgresql/v12"

until nc -z "$POSTGRES_SEEDS" "$DB_PORT"; do
    echo "waiting for PostgreSQL at $POSTGRES_SEEDS:$DB_PORT"
    sleep 1
done

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

for db in temporal temporal_visibility; do
    schema=temporal
    [ "$db" = temporal_visibility ] && schema=visibility
    sql_tool --db "$db" create || echo "database $db exists"
    sql_tool --db "$db" setup-schema -v 0.0
    sql_tool --db "$db" update-schema -d "$SCHEMA_DIR/$schema/versioned"
done
echo "Temporal schema is up to date"
