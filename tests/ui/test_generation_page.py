"""A generation's page as a user watches it: refreshed until the generation finishes, and showing it
finished for good, whatever order the answers to its requests arrive in."""
from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.ui.test_studio_loop import GENERATING


def test_a_generation_shown_cancelled_stays_cancelled_when_an_older_refresh_is_answered_later(page, stack) -> None:
    """The page refreshes every second without waiting for the last answer, so on a busy machine an
    answer sent while the generation ran can arrive after one that shows it cancelled; it must not
    take the page back to running."""
    with stack.api() as api:
        generation = api.post("/api/generations", json={
            "prompt": "a long drone", "base_model": str(stack.tiny_model), "duration_seconds": 120, "num_samples": 1,
            "seed": 3}).json()
    page.goto(f"/#/generations/{generation['id']}")
    expect(page.locator(".facts")).to_contain_text(re.compile(r"step [1-9]"), timeout=GENERATING)

    held = []

    def hold_the_first(route) -> None:
        if held:
            route.continue_()
        else:  # the server answers now, while the generation runs; the page hears it later
            held.append((route, route.fetch()))

    page.route(f"**/api/generations/{generation['id']}", hold_the_first)
    for _ in range(50):  # the next refresh, within a second (a bound on waiting, not a measurement)
        if held:
            break
        page.wait_for_timeout(100)
    [(route, answer)] = held
    assert answer.json()["status"] == "running"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel generation").click()
    status = page.locator("h2 .status")
    expect(status).to_have_text("cancelled", timeout=GENERATING)  # from the cancel's answer or a later refresh

    route.fulfill(response=answer)
    page.wait_for_timeout(500)  # time for the page to take the answer in (it redraws nothing when right)
    expect(status).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel generation")).to_have_count(0)
