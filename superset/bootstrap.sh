#!/usr/bin/env bash
# Superset's init job (compose `superset-init`), also run by the tests: the metadata database,
# the admin from the environment (created once, its password kept in sync with .env), and the
# roles and permissions, then the dashboards bundle (superset/bundle/, made by generate.py) on
# the warehouse, overwriting what Superset holds. Idempotent: every start of the stack runs it.
# Needs SUPERSET_CONFIG_PATH (superset_config.py), SUPERSET_SECRET_KEY, SUPERSET_DATABASE_URI,
# SUPERSET_ADMIN_PASSWORD, SUPERSET_WAREHOUSE_URI (the read-only role, password included).
set -euo pipefail
: "${SUPERSET_ADMIN_PASSWORD:?}"
: "${SUPERSET_WAREHOUSE_URI:?}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
admin="${SUPERSET_ADMIN_USER:-admin}"
export FLASK_APP=superset

superset db upgrade
superset fab create-admin --username "$admin" --firstname Fournil --lastname Admin \
  --email "${SUPERSET_ADMIN_EMAIL:-admin@fournil.invalid}" --password "$SUPERSET_ADMIN_PASSWORD"
superset fab reset-password --username "$admin" --password "$SUPERSET_ADMIN_PASSWORD"
superset init
SUPERSET_ADMIN_USER="$admin" python "$here/import_bundle.py"
echo "superset: bootstrapped (admin: $admin)"
