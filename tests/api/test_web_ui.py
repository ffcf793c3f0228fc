"""The web UI is served by the API app, its assets load, and every API path its JavaScript calls
exists in the app's OpenAPI document, so the UI cannot drift from the API silently."""
from __future__ import annotations

import re
from pathlib import Path

import httpx

from services.api.app import WEB_UI

# A JS string or template literal starting with /api/, up to its closing quote (or a query string).
API_PATH = re.compile(r"""["'`](/api/[^"'`?]*)""")
# `${id(datasetId)}` in a template literal, `{dataset_id}` in OpenAPI: both are one path parameter.
PARAMETER = re.compile(r"\$\{[^}]*\}|\{[^}]*\}")


# The studio loop's HTTP contract, which the pages are written against before its API lands.
def scripts() -> list[Path]:
    return sorted(WEB_UI.glob("*.js"))


def as_template(path: str) -> str:
    return PARAMETER.sub("{}", path)


async def test_the_home_page_is_served_at_the_root(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="app.js">' in response.text
    assert '<link rel="stylesheet" href="style.css">' in response.text


async def test_every_asset_the_page_loads_is_served_with_its_content_type(client: httpx.AsyncClient) -> None:
    page = (await client.get("/")).text
    linked = re.findall(r'(?:src|href)="([^"#:]+\.(?:js|css))"', page)
    imported = {
        name for script in scripts() for name in re.findall(r'from "\./([^"]+)"', script.read_text())
    }
    assert "vendor/uPlot.esm.js" in imported
    assert {"app.js", "style.css", "vendor/uPlot.min.css"} <= set(linked)
    for asset in sorted(set(linked) | imported):
        response = await client.get(f"/{asset}")
        assert response.status_code == 200, asset
        expected = "text/javascript" if asset.endswith(".js") else "text/css"
        assert response.headers["content-type"].startswith(expected), (asset, response.headers["content-type"])


async def test_every_api_path_the_ui_calls_exists_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    called = {as_template(path) for script in scripts() for path in API_PATH.findall(script.read_text())}
    documented = {as_template(path) for path in (await client.get("/openapi.json")).json()["paths"]}
    # The ones the run page and the dataset page cannot do without, so a broken regex fails here.
    assert {"/api/runs/{}/stream", "/api/clips/{}/audio", "/api/experiments/{}/runs"} <= called
    assert called - documented == set()


async def test_the_api_and_its_docs_are_still_answered_by_the_app(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/datasets")).json() == []
    assert (await client.get("/docs")).status_code == 200
    missing = await client.get("/api/no-such-thing")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}
