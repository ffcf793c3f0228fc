"""The API token, the base models a client may name, and how stored bytes are served."""
from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from services.api.app import create_app
from services.settings import Settings

TOKEN = "s3cret-api-token"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, api_token=TOKEN)


async def test_api_requests_without_the_token_are_401_and_change_nothing(client: httpx.AsyncClient, tone) -> None:
    wrong = [{}, {"Authorization": "Bearer not-the-token"}, {"Authorization": f"Basic {TOKEN}"},
             {"Authorization": TOKEN}, {"Authorization": f"Bearer {TOKEN}x"}]
    for headers in wrong:
        for request in (client.get("/api/datasets", headers=headers),
                        client.post("/api/datasets", json={"name": "x", "kind": "supervised"}, headers=headers),
                        client.post("/api/datasets/d1/clips", data={"prompt": "p"},
                                    files={"file": ("a.wav", tone())}, headers=headers),
                        client.get("/api/runs/r1/stream", headers=headers),
                        client.get("/api/no-such-route", headers=headers)):
            response = await request
            assert response.status_code == 401, (headers, response.text)
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "token" in response.json()["detail"]
    listed = await client.get("/api/datasets", headers=BEARER)
    assert (listed.status_code, listed.json()) == (200, [])


async def test_every_route_of_the_api_wants_the_token_and_everything_else_is_the_ui_or_docs(
        client: httpx.AsyncClient, settings: Settings) -> None:
    """Walks the app's own routes, so a route added later is covered as well."""
    public = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/static-offline-docs", ""}
    checked = 0
    for route in iter_route_contexts(create_app(settings).routes):
        if route.path in public:
            continue
        assert route.path.startswith("/api/"), f"{route.path} is outside /api, where the token is not asked for"
        path = re.sub(r"{[^}]+}", "x", route.path)
        for method in route.methods:
            without = await client.request(method, path)
            assert without.status_code == 401, (method, route.path, without.text)
            client.cookies.set("cadenza_token", TOKEN)
            with_cookie = await client.request(method, path)
            client.cookies.clear()
            if method != "GET" or not path.endswith(("/stream", "/audio", "/download", "/export")):
                assert with_cookie.status_code == 401, (method, route.path, "the cookie opens only browser loads")
            checked += 1
    assert checked > 40


async def test_with_the_token_the_api_answers(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/datasets", json={"name": "lofi", "kind": "supervised"}, headers=BEARER)
    assert created.status_code == 201, created.text
    listed = await client.get("/api/datasets", headers={"Authorization": f"bearer {TOKEN}"})  # scheme: any case
    assert [dataset["name"] for dataset in listed.json()] == ["lofi"]


async def test_the_web_ui_and_the_docs_need_no_token(client: httpx.AsyncClient) -> None:
    for path in ("/", "/api.js", "/docs", "/openapi.json"):
        response = await client.get(path)
        assert response.status_code == 200, path


async def test_the_cookie_opens_only_what_a_browser_loads_by_itself(client: httpx.AsyncClient, tone) -> None:
    dataset = (await client.post("/api/datasets", json={"name": "lofi", "kind": "supervised"}, headers=BEARER)).json()
    clip = (await client.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": "piano"},
                              files={"file": ("a.wav", tone())}, headers=BEARER)).json()
    client.cookies.set("cadenza_token", TOKEN)
    audio = await client.get(f"/api/clips/{clip['id']}/audio")
    assert audio.status_code == 200 and audio.content == tone()
    assert (await client.get(f"/api/datasets/{dataset['id']}/export")).status_code == 200
    # reads a script makes, and every change, need the header
    assert (await client.get("/api/datasets")).status_code == 401
    assert (await client.post("/api/datasets", json={"name": "x", "kind": "supervised"})).status_code == 401
    client.cookies.set("cadenza_token", "wrong")
    assert (await client.get(f"/api/clips/{clip['id']}/audio")).status_code == 401


async def test_stored_bytes_are_served_without_sniffing_and_downloads_as_attachments(
        client: httpx.AsyncClient, tone) -> None:
    dataset = (await client.post("/api/datasets", json={"name": "lofi", "kind": "supervised"}, headers=BEARER)).json()
    clip = (await client.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": "piano"},
                              files={"file": ("a.wav", tone())}, headers=BEARER)).json()
    audio = await client.get(f"/api/clips/{clip['id']}/audio", headers=BEARER)
    ranged = await client.get(f"/api/clips/{clip['id']}/audio", headers=BEARER | {"Range": "bytes=0-9"})
    export = await client.get(f"/api/datasets/{dataset['id']}/export", headers=BEARER)
    for response in (audio, ranged, export):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert audio.headers["Content-Type"] == "audio/wav"
    assert export.headers["Content-Disposition"].startswith("attachment;")


async def test_base_models_are_hub_ids_or_folders_the_server_allows(client: httpx.AsyncClient, settings: Settings,
                                                                   tmp_path: Path) -> None:
    dataset = (await client.post("/api/datasets", json={"name": "lofi", "kind": "supervised"}, headers=BEARER)).json()

    async def experiment(base_model: str) -> httpx.Response:
        return await client.post("/api/experiments", headers=BEARER, json={
            "name": "e", "dataset_id": dataset["id"], "config": {"base_model": base_model}})

    allowed = settings.model_dirs[0]
    for accepted in ("facebook/musicgen-small", "musicgen-small", str(allowed / "models" / "mine"), str(allowed)):
        response = await experiment(accepted)
        assert response.status_code == 201, (accepted, response.text)
    refusals = set()
    # an existing folder and a missing one are refused alike: the answer tells nothing about the disk
    for refused in ("/etc", "/no/such/folder", f"{allowed}/../../etc", "../models", "./models", "~/models",
                    "facebook/../../etc", "a/b/c", str(tmp_path.parent.parent.parent)):
        response = await experiment(refused)
        assert response.status_code == 422, (refused, response.text)
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "config", "base_model"]
        refusals.add(error["msg"])
    assert len(refusals) == 1 and "CADENZA_MODEL_DIRS" in refusals.pop()

    generation = await client.post("/api/generations", headers=BEARER, json={
        "prompt": "piano", "base_model": "/etc"})
    assert generation.status_code == 422, generation.text
    assert generation.json()["detail"][0]["loc"] == ["body", "base_model"]
