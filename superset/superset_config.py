"""Superset configuration, from the environment only (compose passes it from `.env`)."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
# Superset's own metadata database (the `superset` database of the stack's Postgres).
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_DATABASE_URI"]
# Behind the TLS reverse proxy.
ENABLE_PROXY_FIX = True
PREFERRED_URL_SCHEME = "https"
FEATURE_FLAGS = {"DASHBOARD_RBAC": True}
WTF_CSRF_ENABLED = True
