"""Lists come from the API a page at a time: the pages show every item, each `Link` followed, at
once (a run's history too) or (samples, generations) a page more each time the user asks."""
from __future__ import annotations

import time
from urllib.parse import parse_qs, urlencode, urlsplit

from playwright.sync_api import expect

from tests.ui.test_studio_loop import GENERATING
from tests.ui.test_training_journey import TRAINING, experiment_on_one_clip, wav

# The lists these pages read (not their items' own paths), a dataset page's clips and a run's history
LISTS = ("/api/experiments", "/api/runs", "/api/samples", "/api/generations")
DATASET = "/api/datasets/"
HISTORY = "/events"


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

    page.route(lambda url: (path := urlsplit(url).path) in LISTS or path.startswith(DATASET) or path.endswith(HISTORY),
               paged)
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



def test_the_run_page_shows_its_whole_history_read_a_page_at_a_time(page, stack) -> None:
    experiment = experiment_on_one_clip(stack, "paged history", stack.training_config(max_steps=2))
    with stack.api() as api:
        run = api.post(f"/api/experiments/{experiment['id']}/runs", json={"name": "paged run"}).json()
        deadline = time.monotonic() + TRAINING / 1000
        while not run["finished"] and time.monotonic() < deadline:
            time.sleep(0.5)
            run = api.get(f"/api/runs/{run['id']}").json()
        assert run["status"] == "completed", run
        history = [event["type"] for event in api.get(f"/api/runs/{run['id']}/events").json()]
    requested = one_at_a_time(page)

    page.goto(f"/#/runs/{run['id']}")
    expect(page.locator(".summary .status")).to_have_text("completed")
    # every event the timeline tells of, the last (the run's completion) included
    told = ("RunRequested", "RunStarted", "DatasetExported", "CheckpointSaved", "AdapterSaved", "RunCompleted")
    expect(page.locator(".timeline li")).to_have_count(sum(kind in told for kind in history))
    expect(page.locator(".timeline li").last).to_contain_text("completed after 2 steps")
    assert sum(HISTORY + "?" in url and "after_seq=" in url for url in requested) == len(history) - 1


def generated(stack, prompt: str, num_samples: int) -> dict:
    """A generation the stack's worker has finished (requested through the API)."""
    with stack.api() as api:
        generation = api.post("/api/generations", json={
            "prompt": prompt, "base_model": str(stack.tiny_model), "duration_seconds": 0.2,
            "num_samples": num_samples}).json()
        deadline = time.monotonic() + GENERATING / 1000
        while not generation["finished"] and time.monotonic() < deadline:
            time.sleep(0.5)
            generation = api.get(f"/api/generations/{generation['id']}").json()
        assert generation["status"] == "completed", generation
        return generation


def test_the_samples_and_generations_pages_show_more_a_page_at_a_time(page, stack) -> None:
    for n in range(2):
        generated(stack, f"paged tune {n}", num_samples=2)
    with stack.api() as api:
        total = len(api.get("/api/generations").json())
    requested = one_at_a_time(page)

    page.goto("/#/samples?q=paged+tune")
    prompts = page.locator("li.sample .prompt")
    more = page.get_by_role("button", name="More samples")
    for shown in range(1, 4):
        expect(prompts).to_have_count(shown)
        more.click()
    expect(prompts).to_have_text(["paged tune 1", "paged tune 1", "paged tune 0", "paged tune 0"])
    expect(more).to_have_count(0)  # the last page has no next
    # each next page kept the filter
    assert [parse_qs(urlsplit(url).query)["q"] for url in requested if "/api/samples?" in url] == [["paged tune"]] * 4

    page.goto("/#/generate")
    rows = page.locator("tbody tr")
    older = page.get_by_role("button", name="Older generations")
    for shown in range(1, total):
        expect(rows).to_have_count(shown)
        older.click()
    expect(rows).to_have_count(total)
    expect(older).to_have_count(0)
    for n in range(2):
        expect(page.get_by_role("link", name=f"paged tune {n}")).to_be_visible()
