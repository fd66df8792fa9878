"""Write docs/api/openapi.json: the API's OpenAPI document, as the app itself generates it.

`make docs` runs this before `mkdocs build`, and the API reference page renders the file. It is
generated on every build and ignored by git, so the reference cannot go stale.

No database is needed: `create_app` builds its engine without connecting, and the document is
made without starting the app (no lifespan, no model loading, no polling).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "api" / "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of `fournil.api.app:create_app`, independent of `.env`."""
    from fournil.api.app import create_app
    from fournil.settings import Settings

    settings = Settings(_env_file=None, database_url="sqlite://")
    return create_app(settings, poll=False).openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> int:
    text = render(openapi_document())
    if OUT.exists() and OUT.read_text(encoding="utf-8") == text:
        print(f"{OUT}: up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text, encoding="utf-8")
    print(f"{OUT}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
