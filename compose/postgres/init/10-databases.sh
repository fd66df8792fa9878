#!/usr/bin/env bash
# Creates the stack's databases, each owned by its own role with its own password, and a
# read-only role on the warehouse for the dashboards and notebooks. Idempotent.
#
# Run by the postgres image on first start (mounted in /docker-entrypoint-initdb.d), and by the
# native stack test against a local server (PGHOST, PGPORT, PGUSER select the server).
set -euo pipefail

psql_admin() {
  psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname "${1:-${POSTGRES_DB:-postgres}}" "${@:2}"
}

create_database() {  # role password database
  psql_admin "" -v role="$1" -v pw="$2" -v db="$3" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')\gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'pw')\gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db')\gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db')\gexec
SQL
}

create_database "${WAREHOUSE_DB_USER:-fournil}" "${WAREHOUSE_DB_PASSWORD:?}" "${WAREHOUSE_DB:-warehouse}"
create_database "${MLFLOW_DB_USER:-mlflow}" "${MLFLOW_DB_PASSWORD:?}" "${MLFLOW_DB:-mlflow}"
create_database "${PREFECT_DB_USER:-prefect}" "${PREFECT_DB_PASSWORD:?}" "${PREFECT_DB:-prefect}"
create_database "${SUPERSET_DB_USER:-superset}" "${SUPERSET_DB_PASSWORD:?}" "${SUPERSET_DB:-superset}"

# read-only access to the warehouse: tables there now and every table its owner creates later
psql_admin "${WAREHOUSE_DB:-warehouse}" \
  -v reader="${WAREHOUSE_READER_USER:-warehouse_reader}" -v pw="${WAREHOUSE_READER_PASSWORD:?}" \
  -v owner="${WAREHOUSE_DB_USER:-fournil}" -v db="${WAREHOUSE_DB:-warehouse}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'reader')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader')\gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'reader', :'pw')\gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'db', :'reader')\gexec
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'reader')\gexec
SELECT format('GRANT SELECT ON ALL TABLES IN SCHEMA public TO %I', :'reader')\gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT ON TABLES TO %I',
              :'owner', :'reader')\gexec
SQL
# the Postgres exporter's role: statistics only (pg_monitor), no data
psql_admin "" -v role="${MONITORING_DB_USER:-monitoring}" -v pw="${MONITORING_DB_PASSWORD:?}" <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'role')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role')\gexec
SELECT format('ALTER ROLE %I PASSWORD %L', :'role', :'pw')\gexec
SELECT format('GRANT pg_monitor TO %I', :'role')\gexec
SQL
echo "fournil: databases ready"
