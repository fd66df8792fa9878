"""tests/e2e/containers needs a Docker engine (and root to install one): only `make compose-test`
collects it (FOURNIL_COMPOSE_TEST=1), never `make test`, `make stack-test` or `make qualify`."""

import os

collect_ignore = [] if os.environ.get("FOURNIL_COMPOSE_TEST") == "1" else ["containers"]
