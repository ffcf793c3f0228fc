"""A server with an API token: the web UI asks for it once, keeps it in the browser, and shows the
API's refusal when it is wrong."""
from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
from playwright.sync_api import expect

from serving import free_port, wait_until_serving
from services.cli import serve_api

TOKEN = "ui-test-token-7f3a"


@pytest.fixture(scope="module")
def guarded_url(stack) -> Iterator[str]:
    """A second API on the stack's servers (its projector, trainer and workers serve both), with a token."""
    port = free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, name="guarded-api", daemon=True,
                              args=(serve_api(replace(stack.settings, api_token=TOKEN), stop, "127.0.0.1", port),))
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, thread, headers={"Authorization": f"Bearer {TOKEN}"})
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


@pytest.fixture
def guarded_page(offline_page, guarded_url):
    return offline_page(guarded_url)


def a_dataset(url: str) -> str:
    name = f"guarded {uuid.uuid4().hex[:6]}"
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as api:
        api.post("/api/datasets", json={"name": name, "kind": "supervised"}).raise_for_status()
    return name


def test_the_ui_asks_for_the_token_once_and_keeps_it(guarded_page, guarded_url) -> None:
    name = a_dataset(guarded_url)
    prompts: list[str] = []

    def answer(dialog) -> None:
        prompts.append(dialog.message)
        dialog.accept(TOKEN)

    guarded_page.on("dialog", answer)
    guarded_page.goto("/")
    expect(guarded_page.get_by_role("link", name=name)).to_be_visible()
    # the home page's lists were all refused at first, yet the user is asked once
    assert len(prompts) == 1
    assert "CADENZA_API_TOKEN" in prompts[0]

    guarded_page.reload()
    expect(guarded_page.get_by_role("link", name=name)).to_be_visible()
    assert len(prompts) == 1  # kept in this browser

    # what the browser loads by itself (live updates, audio) cannot send a header: the cookie carries it
    status = guarded_page.evaluate("fetch('/api/runs/no-such-run/stream').then((response) => response.status)")
    assert status == 404  # past the token check: the run is unknown, not the caller


def test_a_wrong_token_shows_the_refusal_and_the_right_one_is_asked_for_again(guarded_page, guarded_url) -> None:
    name = a_dataset(guarded_url)
    answers = iter(["not-the-token"] + [TOKEN] * 10)
    guarded_page.on("dialog", lambda dialog: dialog.accept(next(answers)))

    guarded_page.goto("/")
    expect(guarded_page.get_by_role("alert").first).to_contain_text("this API needs its token")
    expect(guarded_page.get_by_role("link", name=name)).to_have_count(0)

    guarded_page.reload()  # the stored token is refused again: asked again, and the right one works
    expect(guarded_page.get_by_role("link", name=name)).to_be_visible()


def test_without_the_token_the_api_refuses_and_the_page_says_why(guarded_page) -> None:
    guarded_page.on("dialog", lambda dialog: dialog.dismiss())
    guarded_page.goto("/")
    expect(guarded_page.get_by_role("alert").first).to_contain_text("this API needs its token")
