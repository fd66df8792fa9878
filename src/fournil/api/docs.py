"""/docs (Swagger UI) and /redoc served with their scripts and styles from the API itself, as
FastAPI's "self-hosting JavaScript and CSS for docs" recipe does: FastAPI's defaults load them
from a public CDN, which an offline VM cannot reach (blank pages) and which comes without
integrity hashes. The assets are the ones the pinned `fastapi-standalone-docs` package ships."""

from pathlib import Path

import fastapi_standalone_docs
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
_STATIC = Path(fastapi_standalone_docs.__file__).parent / "static"


def add_docs(app: FastAPI) -> None:
    """Mount the assets and the two pages on `app` (created with docs_url=redoc_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=_STATIC), name="docs-assets")
    title = app.title

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/fastapi/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{title} - ReDoc",
            redoc_js_url=f"{ASSETS}/redoc/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/fastapi/favicon.png",
            with_google_fonts=False,
        )
