"""A user's way through training in the browser: several clips uploaded at once (one of them bad),
an experiment, two runs watched live, and the two runs compared; every page also at phone width."""
from __future__ import annotations

import io
import json

import numpy as np
import soundfile
from playwright.sync_api import expect

TRAINING = 180_000  # ms: a tiny-model run, its trainer process included, on a busy CPU


def wav(frequency: float) -> bytes:
    t = np.arange(32_000) / 32_000
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32), 32_000, format="WAV")
    return buffer.getvalue()


def experiment_on_one_clip(stack, name: str, config: dict, prompt: str = "a hum", frequency: float = 220.0) -> dict:
    """An experiment on a new dataset of one clip, set up through the API."""
    with stack.api() as api:
        dataset = api.post("/api/datasets", json={"name": f"{name} takes", "kind": "supervised"}).json()
        api.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": prompt},
                 files={"file": ("hum.wav", wav(frequency), "audio/wav")}).raise_for_status()
        return api.post("/api/experiments", json={"name": name, "dataset_id": dataset["id"], "config": config}).json()


def test_upload_train_watch_and_compare(page, stack, screenshot) -> None:
    page.goto("/")
    page.get_by_label("Name").first.fill("lofi takes")
    page.get_by_role("button", name="Create dataset").click()
    expect(page.get_by_role("heading", name="lofi takes")).to_be_visible()

    page.get_by_label("Prompt").fill("calm lofi piano")
    page.get_by_label("choose files").set_input_files([
        {"name": "low.wav", "mimeType": "audio/wav", "buffer": wav(220)},
        {"name": "broken.wav", "mimeType": "audio/wav", "buffer": b"this is not audio"},
        {"name": "high.wav", "mimeType": "audio/wav", "buffer": wav(440)},
    ])
    page.get_by_role("button", name="Upload").click()
    uploads = page.locator(".uploads li")
    expect(uploads.filter(has_text="low.wav")).to_contain_text("added")
    expect(uploads.filter(has_text="high.wav")).to_contain_text("added")
    failed = uploads.filter(has_text="broken.wav")
    expect(failed.get_by_role("alert")).not_to_have_text("uploading")
    expect(failed).to_be_in_viewport()
    expect(page.get_by_text("2 of 3 added")).to_be_visible()
    expect(page.locator(".items .clip")).to_have_count(2)
    expect(page.locator(".player[data-ready=true]")).to_have_count(2)  # both waveforms drawn
    screenshot("dataset")

    page.get_by_role("link", name="Home").click()
    expect(page.get_by_role("link", name="lofi takes")).to_be_visible()
    screenshot("home")
    experiment_form = page.locator("form", has=page.get_by_role("button", name="Create experiment"))
    experiment_form.get_by_label("Name").fill("warm lofi")
    experiment_form.get_by_label("Dataset").select_option(label="lofi takes (supervised)")  # others' tests add more
    experiment_form.get_by_label("More settings (JSON)").fill(json.dumps(stack.training_config()))
    experiment_form.get_by_role("button", name="Create experiment").click()
    expect(page.get_by_role("heading", name="warm lofi")).to_be_visible()
    screenshot("experiment")

    def train(name: str, overrides: dict) -> None:
        page.get_by_label("Name").last.fill(name)
        page.get_by_label("Overrides (JSON)").fill(json.dumps(overrides))
        page.get_by_role("button", name="Start run").click()
        expect(page.get_by_role("heading", name=name)).to_be_visible()
        # The curve is drawn from the live stream while the run trains, then the run completes.
        expect(page.locator(".chart .uplot")).to_be_visible(timeout=TRAINING)
        expect(page.locator(".summary .status")).to_have_text("completed", timeout=TRAINING)
        expect(page.locator(".summary .progress")).to_have_text("step 6 of 6")
        expect(page.locator(".timeline")).to_contain_text("completed after 6 steps")

    train("fast", {"learning_rate": 0.01})
    screenshot("run")
    page.get_by_role("link", name="warm lofi").click()
    train("slow", {"learning_rate": 0.001})

    page.locator("header nav").get_by_role("link", name="Runs").click()
    page.get_by_label("compare fast").check()
    page.get_by_label("compare slow").check()
    page.get_by_role("button", name="Compare selected").click()
    expect(page.get_by_role("heading", name="Comparing 2 runs")).to_be_visible()
    legend = page.locator(".uplot .u-legend")
    expect(legend).to_contain_text("warm lofi / fast")
    expect(legend).to_contain_text("warm lofi / slow")
    learning_rate = page.locator("tr.differs", has_text="learning_rate")
    expect(learning_rate).to_contain_text("0.01")
    expect(learning_rate).to_contain_text("0.001")
    screenshot("compare")

    page.go_back()
    expect(page.get_by_role("heading", name="Runs", exact=True)).to_be_visible()
    page.get_by_label("experiment").select_option(label="warm lofi")  # other tests' runs share the stack
    page.get_by_label("status").select_option("failed")
    expect(page.get_by_text("No run matches these filters.")).to_be_visible()
    page.get_by_label("status").select_option("completed")
    expect(page.locator("tbody tr")).to_have_count(2)
    screenshot("runs")


def test_an_unknown_page_says_not_found(page, screenshot) -> None:
    page.goto("/#/no/such/page")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    screenshot("not-found")
