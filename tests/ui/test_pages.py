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


def test_when_the_api_is_unreachable_the_page_offers_to_try_again(page, screenshot) -> None:
    page.route("**/api/**", lambda route: route.abort())
    page.goto("/#/runs")
    expect(page.get_by_role("alert")).to_contain_text("Cannot reach the Cadenza API")
    screenshot("unreachable")
    page.unroute("**/api/**")
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)


def test_one_failing_list_leaves_the_rest_of_the_home_page(page) -> None:
    page.route("**/api/runs", lambda route: route.fulfill(status=500, json={"detail": "the runs table is on fire"}))
    page.goto("/")
    expect(page.get_by_role("alert")).to_contain_text("the runs table is on fire")
    expect(page.get_by_role("heading", name="Datasets")).to_be_visible()
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible()
    expect(page.get_by_role("heading", name="Training now")).to_have_count(0)
