"""mkdocs hooks for the API reference page (hooks run after the plugins).

The OpenAPI plugin copies the app's descriptions into the page as they are, so a placeholder
such as `fk_<id>_<secret>` would reach the browser as unknown HTML tags and vanish. Escape the
`<word>` placeholders that are not HTML tags.
"""

from __future__ import annotations

import re
from typing import Any

HTML_TAGS = frozenset(
    [
        "a",
        "b",
        "br",
        "code",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "em",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "hr",
        "i",
        "li",
        "ol",
        "p",
        "pre",
        "small",
        "span",
        "strong",
        "sub",
        "summary",
        "sup",
        "table",
        "tbody",
        "td",
        "th",
        "thead",
        "tr",
        "u",
        "ul",
    ]
)
PLACEHOLDER = re.compile(r"<([A-Za-z_][\w-]*)>")


def escape_placeholders(markdown: str) -> str:
    def escape(match: re.Match[str]) -> str:
        name = match.group(1)
        return match.group(0) if name.lower() in HTML_TAGS else f"&lt;{name}&gt;"

    return PLACEHOLDER.sub(escape, markdown)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    if page.file.src_uri == "api/reference.md":
        return escape_placeholders(markdown)
    return markdown
