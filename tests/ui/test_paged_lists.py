"""Lists come from the API a page at a time: the pages show every item, each `Link` followed."""
from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

from playwright.sync_api import expect

from tests.ui.test_training_journey import wav

# The lists these pages read, and the dataset page's clips
LISTS = ("/api/experiments", "/api/runs", "/api/datasets/")


def one_at_a_time(page) -> list[str]:
    """Every list request the page makes asks for pages of one item (the `Link` it follows keeps
    that limit); returns the URLs requested, as they go."""
    requested: list[str] = []

    def paged(route) -> None:
        parts = urlsplit(route.request.url)
        query = parse_qs(parts.query)
        query.setdefault("limit", ["1"])
        url = parts._replace(query=urlencode(query, doseq=True)).geturl()
        requested.append(url)
        route.continue_(url=url)

    page.route(lambda url: urlsplit(url).path.startswith(LISTS), paged)
    return requested


def test_the_pages_show_every_item_of_a_list_read_a_page_at_a_time(page, stack) -> None:
    with stack.api() as api:
        dataset = api.post("/api/datasets", json={"name": "paged takes", "kind": "supervised"}).json()
        for n in range(3):
            api.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": f"paged clip {n}"},
                     files={"file": ("hum.wav", wav(200 + 20 * n), "audio/wav")}).raise_for_status()
        for n in range(3):
            api.post("/api/experiments", json={"name": f"paged try {n}", "dataset_id": dataset["id"],
                                               "config": {}}).raise_for_status()
    requested = one_at_a_time(page)

    page.goto("/")
    for n in range(3):
        expect(page.get_by_role("link", name=f"paged try {n}")).to_be_visible()
    assert sum("/api/experiments?" in url and "after=" in url for url in requested) >= 3

    page.goto(f"/#/datasets/{dataset['id']}")
    for n in range(3):
        expect(page.get_by_text(f"paged clip {n}", exact=True)).to_be_visible()
    assert sum(f"/api/datasets/{dataset['id']}?" in url and "after=" in url for url in requested) == 2
