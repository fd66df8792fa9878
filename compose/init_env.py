"""Write .env from .env.example with a fresh random value for every `change-me` secret.

Usage: python3 compose/init_env.py [--domain DOMAIN] [--force]
Standard library only: it runs on a VM that has nothing but Docker and Python 3.
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
from pathlib import Path

PLACEHOLDER = "change-me"
ROOT = Path(__file__).resolve().parent.parent


def origin() -> str | None:
    """The checkout's `origin` remote, which Jenkins builds from."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), "remote", "get-url", "origin"],
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return None
    return done.stdout.strip() or None


def render(example: str, domain: str | None) -> str:
    lines = []
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if not sep or line.lstrip().startswith("#"):
            lines.append(line)
            continue
        if value == PLACEHOLDER:
            value = secrets.token_urlsafe(32)  # URL-safe: fits in connection URLs as is
        elif key == "FOURNIL_MODE":
            value = "production"
        elif key == "FOURNIL_DOMAIN" and domain:
            value = domain
        elif key == "FOURNIL_DEPLOY_DIR":
            value = str(ROOT)  # this checkout is the stack's folder
        elif key == "FOURNIL_REPO_URL":
            value = origin() or f"file://{ROOT}"
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domain", help="public domain of the VM (FOURNIL_DOMAIN)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing .env")
    parser.add_argument("--output", type=Path, default=ROOT / ".env")
    args = parser.parse_args(argv)
    if args.output.exists() and not args.force:
        print(f"{args.output} exists: keep it, or pass --force to replace it", file=sys.stderr)
        return 1
    text = render((ROOT / ".env.example").read_text(encoding="utf-8"), args.domain)
    args.output.write_text(text, encoding="utf-8")
    args.output.chmod(0o600)
    print(f"wrote {args.output} (mode 600) with new random secrets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
