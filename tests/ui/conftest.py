"""The web UI in headless Chromium (Debian's `chromium`, driven by Playwright) against the whole
stack on real NATS and PostgreSQL: the API served by uvicorn on a free port, the registry projector,
one trainer and one generation worker (the tiny model on the CPU), all in one background thread for
the session.

Each test's pages are saved as screenshots, at desktop and phone width, under SCREENSHOTS."""
from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from serving import free_port, wait_until_serving
from services.settings import Settings

CHROMIUM = Path(os.environ.get("CADENZA_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(__file__).parent / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 375, "height": 740}


def require_chromium() -> None:
    """In CI a missing browser is a failure (.ci/run installs it); elsewhere the tests skip."""
    missing = f"no Chromium at {CHROMIUM}: install Debian's `apt-get install -y chromium` (or set CADENZA_CHROMIUM)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        missing = "Playwright is not installed: pip install -e '.[test]'"
    else:
        if CHROMIUM.exists():
            return
    if os.environ.get("CI"):
        pytest.fail(missing)
    pytest.skip(missing)


@dataclass(frozen=True)
class Stack:
    url: str
    settings: Settings
    tiny_model: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def training_config(self, **overrides: object) -> dict:
        """A few steps of the tiny model on CPU; the loss goes down. One clip is one step an epoch:
        with the most epochs there are, max_steps sets the length."""
        return {
            "base_model": str(self.tiny_model), "device": "cpu", "precision": "fp32", "max_steps": 6,
            "num_epochs": 1000, "batch_size": 1, "learning_rate": 1e-2, "lora_r": 4, "lora_alpha": 8,
            "lora_dropout": 0.0, "checkpoint_every": 2, **overrides,
        }


async def run_stack(settings: Settings, port: int, stop: asyncio.Event) -> None:
    from services.cli import serve_api
    from services.generator.settings import GeneratorSettings
    from services.generator.worker import run_generator
    from services.registry.projector import run_projector
    from services.trainer.settings import TrainerSettings
    from services.trainer.worker import run_trainer

    # Short fetches: on stop, the idle workers wait out their pending fetch.
    trainer = TrainerSettings(trainer_id="ui-trainer", cache_dir=settings.cache_dir, fetch_timeout=0.5)
    generator = GeneratorSettings(worker_id="ui-generator", cache_dir=settings.cache_dir / "generator", device="cpu",
                                  precision="fp32", fetch_timeout=0.5)
    tasks = [
        asyncio.create_task(serve_api(settings, stop, "127.0.0.1", port)),
        asyncio.create_task(run_projector(settings, stop)),
        asyncio.create_task(run_trainer(settings, stop, trainer)),
        asyncio.create_task(run_generator(settings, stop, generator)),
    ]
    await asyncio.gather(*tasks)


@pytest.fixture(scope="session")
def stack(session_settings: Settings, tiny_model: Path) -> Iterator[Stack]:
    require_chromium()
    port = free_port()
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, name="ui-stack", daemon=True,
                              args=(run_stack(session_settings, port, stop),))
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, thread)
        yield Stack(url=url, settings=session_settings, tiny_model=tiny_model)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


# Per module, not per session: while Playwright's sync API is open it holds an event loop running
# in the main thread, and pytest-asyncio's tests after it could not run theirs.
@pytest.fixture(scope="module")
def browser(stack: Stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def offline_page(browser) -> Iterator:
    """`offline_page(url)`: a page in a fresh browser context whose requests may reach `url` only:
    anything else (a CDN) is refused, as it would be offline. The test fails if a script error
    happened on any such page."""
    contexts = []
    errors: list[str] = []

    def open_page(url: str):
        context = browser.new_context(viewport=DESKTOP, base_url=url)
        contexts.append(context)
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(url) else route.abort())
        page = context.new_page()
        page.set_default_timeout(30_000)
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert errors == [], errors


@pytest.fixture
def page(offline_page, stack: Stack):
    return offline_page(stack.url)


@pytest.fixture
def screenshot(page):
    """`screenshot(name)` saves the page as it is now at desktop and at phone width, and checks that
    at phone width nothing overflows the viewport sideways."""

    def take(name: str) -> None:
        SCREENSHOTS.mkdir(exist_ok=True)
        for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
            page.set_viewport_size(size)
            page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
            if size is PHONE:
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{name}: {width} px wide at {PHONE['width']} px"
        page.set_viewport_size(DESKTOP)

    return take
