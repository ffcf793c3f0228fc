"""The studio loop in the browser: generate with an adapter, rate, tag and favourite the samples,
vote blind in a comparison by keyboard, draw a preference dataset from the votes, train on it and
follow the new adapter's lineage back to the first. The stack's generation worker generates every
sample with the tiny model, in one second of audio or less, to stay quick."""
from __future__ import annotations

import json
import time

from playwright.sync_api import expect

from tests.ui.test_training_journey import TRAINING, experiment_on_one_clip

GENERATING = 120_000  # ms: a few tiny-model generations, the model loaded on first use, on a busy CPU


def trained_adapter(stack) -> dict:
    """An adapter trained by the stack's trainer on one uploaded clip (set up through the API)."""
    experiment = experiment_on_one_clip(stack, "hum tuned", stack.training_config(max_steps=2), "a low hum", 110)
    with stack.api() as api:
        run = api.post(f"/api/experiments/{experiment['id']}/runs", json={}).json()
        deadline = time.monotonic() + TRAINING / 1000
        while not run["finished"] and time.monotonic() < deadline:
            time.sleep(0.5)
            run = api.get(f"/api/runs/{run['id']}").json()
        assert run["status"] == "completed", run
        return api.get(f"/api/adapters/{run['adapter_id']}").json()


def test_generate_rate_compare_build_a_dataset_train_and_follow_the_lineage(page, stack, screenshot) -> None:
    adapter = trained_adapter(stack)

    page.goto("/")
    page.locator("header nav").get_by_role("link", name="Generate").click()
    expect(page.get_by_role("heading", name="Generate")).to_be_visible()
    page.get_by_label("Prompt").fill("warm lofi piano")
    page.locator("select[name=adapter_id]").select_option(label=adapter["name"])
    page.get_by_label("Seconds").fill("0.5")
    page.get_by_label("Samples").fill("2")
    screenshot("generate")
    page.get_by_role("button", name="Generate").click()
    expect(page.locator(".facts").first).to_contain_text(f"{adapter['name']} · 2 × 0.5 s · seed 0")
    expect(page.get_by_role("heading", name="warm lofi piano")).to_contain_text("completed", timeout=GENERATING)
    samples = page.locator("li.sample")
    expect(samples).to_have_count(2)
    expect(page.locator(".player[data-ready=true]")).to_have_count(2)  # both waveforms drawn

    first, second = samples.nth(0), samples.nth(1)
    first.get_by_role("button", name="rate 5").click()
    expect(first.get_by_role("button", name="rate 5")).to_have_attribute("aria-pressed", "true")
    first.get_by_label("tag").fill("keeper")
    first.get_by_role("button", name="Tag").click()
    expect(first.locator(".tag")).to_have_text("keeper×")
    # The box is ticked at once; what the API kept is known once it answered.
    with page.expect_response(lambda response: response.url.endswith("/favorite")) as favourited:
        second.get_by_label("favourite").check()
    assert favourited.value.status == 200
    screenshot("generation")
    page.reload()  # what the page showed is what the API kept
    expect(first.get_by_role("button", name="rate 5")).to_have_attribute("aria-pressed", "true")
    expect(first.locator(".tag")).to_have_text("keeper×")
    expect(second.get_by_label("favourite")).to_be_checked()

    page.locator("header nav").get_by_role("link", name="Samples").click()
    expect(page.get_by_role("heading", name="Samples")).to_be_visible()
    page.get_by_label("favourites only").check()
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("li.sample")).to_have_count(1)
    expect(page.locator("li.sample").get_by_label("favourite")).to_be_checked()
    screenshot("samples")

    page.locator("header nav").get_by_role("link", name="Comparisons").click()
    expect(page.get_by_role("heading", name="New comparison")).to_be_visible()
    page.get_by_label("Name").fill("tuned vs base")
    page.get_by_label("Side A").select_option(label=adapter["name"])
    page.locator("input[name=base_model]").fill(str(stack.tiny_model))  # the base side on the adapter's model
    page.get_by_label("Prompts, one a line").fill("calm piano")
    page.get_by_label("Samples per prompt").fill("3")
    page.get_by_label("Seconds").fill("1")  # the votes' samples are trained on later: clips of 1 s or more
    page.get_by_role("button", name="Create comparison").click()
    expect(page.get_by_role("heading", name="tuned vs base")).to_be_visible()
    comparison_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("button", name="First is better (1)")).to_be_visible(timeout=GENERATING)
    votes = page.locator("dl.results dd").first
    for key, voted in (("1", 1), ("2", 2), ("0", 3)):
        expect(page.get_by_role("button", name="First is better (1)")).to_be_visible(timeout=GENERATING)
        screenshot("comparison-vote") if voted == 1 else None
        page.keyboard.press(key)
        expect(votes).to_have_text(str(voted))
    expect(page.get_by_text("Every pair is voted.")).to_be_visible()
    with stack.api() as api:
        results = api.get(f"/api/comparisons/{comparison_id}/results").json()
    low, high = (f"{100 * bound:.0f} %" for bound in results["a_win_rate_ci"])
    expect(page.locator("dd.win-rate")).to_have_text(
        f"{100 * results['a_win_rate']:.0f} % (95 % interval {low} to {high})")
    assert (results["votes"], results["a_wins"] + results["b_wins"], results["ties"]) == (3, 2, 1)
    screenshot("comparison-results")

    page.goto("/#/datasets/new-from-feedback")
    expect(page.get_by_role("heading", name="Dataset from feedback")).to_be_visible()
    page.get_by_label("Name").fill("tuned votes")
    page.get_by_label("Kind").select_option("preference")
    expect(page.locator("output.preview")).to_have_text("0")
    page.get_by_label("Comparisons").select_option(label="tuned vs base")
    expect(page.locator("output.preview")).to_have_text("2")  # the equal vote is left out
    screenshot("dataset-from-feedback")
    page.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_role("heading", name="tuned votes")).to_be_visible()

    page.get_by_role("link", name="Home").click()
    expect(page.get_by_role("heading", name="Experiments")).to_be_visible()
    experiment_form = page.locator("form", has=page.get_by_role("button", name="Create experiment"))
    experiment_form.get_by_label("Name").fill("votes tuned")
    experiment_form.get_by_label("Dataset").select_option(label="tuned votes (preference)")
    experiment_form.get_by_label("More settings (JSON)").fill(json.dumps(stack.training_config()))
    experiment_form.get_by_role("button", name="Create experiment").click()
    expect(page.get_by_role("heading", name="votes tuned")).to_be_visible()
    page.get_by_label("Name").last.fill("round two")
    page.get_by_role("button", name="Start run").click()
    expect(page.locator(".summary .status")).to_have_text("completed", timeout=TRAINING)

    page.locator("header nav").get_by_role("link", name="Adapters").click()
    expect(page.get_by_role("heading", name="Adapters")).to_be_visible()
    screenshot("adapters")
    page.get_by_role("link", name="votes tuned-round two").click()
    lineage = page.locator("ul.lineage").first
    expect(lineage).to_contain_text("round two")
    expect(lineage).to_contain_text("preference dataset tuned votes")
    expect(lineage).to_contain_text("2 votes of comparison tuned vs base")
    parent = lineage.locator(".lineage .lineage-node").first
    expect(parent.get_by_role("link", name=adapter["name"])).to_be_visible()
    expect(lineage).to_contain_text("base model alone")
    screenshot("adapter-lineage")
