"""Import the dashboards bundle (superset/bundle/) into Superset, overwriting what it holds.

Run by the init job (`bootstrap.sh`) with Superset's own Python. The warehouse's address and the
read-only role's password come from `SUPERSET_WAREHOUSE_URI` (never from the bundle). The assets
importer overwrites databases, datasets, charts and dashboards alike, so an edited chart in the
repository reaches a running Superset at its next start (`import-dashboards` would keep the old
charts and datasets).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import yaml
from sqlalchemy.engine.url import make_url

BUNDLE = Path(os.environ.get("SUPERSET_BUNDLE_DIR", Path(__file__).resolve().parent / "bundle"))
MASK = "XXXXXXXXXX"


def contents(uri: str) -> tuple[dict[str, str], dict[str, str]]:
    """The bundle's files as the importer takes them, and the database passwords by file."""
    url = make_url(uri)
    files, passwords = {}, {}
    for path in sorted(BUNDLE.rglob("*.yaml")):
        name = path.relative_to(BUNDLE).as_posix()
        text = path.read_text(encoding="utf-8")
        if name.startswith("databases/"):
            config = yaml.safe_load(text)
            config["sqlalchemy_uri"] = str(url.set(password=MASK)) if url.password else uri
            text = yaml.safe_dump(config, sort_keys=False)
            if url.password:
                passwords[name] = url.password
        files[name] = text
    return files, passwords


def main() -> int:
    uri = os.environ.get("SUPERSET_WAREHOUSE_URI")
    if not uri:
        print("import_bundle: SUPERSET_WAREHOUSE_URI is not set", file=sys.stderr)
        return 2
    files, passwords = contents(uri)

    from flask import g
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        # Superset runs in its own virtualenv; here mypy sees this folder as `superset`
        from superset import security_manager  # type: ignore[attr-defined]
        from superset.commands.importers.v1.assets import ImportAssetsCommand

        g.user = security_manager.find_user(username=os.environ.get("SUPERSET_ADMIN_USER", "admin"))
        ImportAssetsCommand(files, passwords=passwords).run()
    kinds = Counter(name.split("/")[0] for name in files if "/" in name)  # not metadata.yaml
    print("import_bundle: imported " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
