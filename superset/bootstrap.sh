#!/usr/bin/env bash
# Superset's init job (compose `superset-init`), also run by the tests: the metadata database,
# the admin from the environment (created once, its password kept in sync with .env), and the
# roles and permissions. Idempotent: every start of the stack runs it.
# Needs SUPERSET_CONFIG_PATH (superset_config.py), SUPERSET_SECRET_KEY, SUPERSET_DATABASE_URI,
# SUPERSET_ADMIN_PASSWORD.
set -euo pipefail
: "${SUPERSET_ADMIN_PASSWORD:?}"
admin="${SUPERSET_ADMIN_USER:-admin}"
export FLASK_APP=superset

superset db upgrade
superset fab create-admin --username "$admin" --firstname Fournil --lastname Admin \
  --email "${SUPERSET_ADMIN_EMAIL:-admin@fournil.invalid}" --password "$SUPERSET_ADMIN_PASSWORD"
superset fab reset-password --username "$admin" --password "$SUPERSET_ADMIN_PASSWORD"
superset init
echo "superset: bootstrapped (admin: $admin)"
