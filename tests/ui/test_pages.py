"""What a user sees in the browser, page by page."""
from __future__ import annotations

from playwright.sync_api import expect


def test_the_home_page_lists_datasets_and_experiments(page, screenshot) -> None:
    page.goto("/")
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible()
    screenshot("home-empty")


def test_the_api_docs_render_with_no_network(page, screenshot) -> None:
    # The page fixture refuses every request outside the stack, as a machine offline would.
    page.goto("/")
    page.get_by_role("link", name="API docs").click()
    expect(page.get_by_role("heading", name="Cadenza")).to_be_visible()
    expect(page.get_by_text("/api/experiments/{experiment_id}/runs").first).to_be_visible()
    screenshot("api-docs")
