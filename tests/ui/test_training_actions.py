"""What a user changes on the training side: clips imported from a manifest (JSONL and CSV), a
wrong clip removed once confirmed, an experiment edited, a run cancelled only once confirmed (also
when the live stream shows it stopped before the cancel is answered), and a cancelled run retried."""
from __future__ import annotations

import json
import re

from playwright.sync_api import expect

from tests.ui.test_training_journey import TRAINING, experiment_on_one_clip, wav


def test_clips_are_imported_from_a_jsonl_and_a_csv_manifest(page, stack, screenshot) -> None:
    with stack.api() as api:
        dataset = api.post("/api/datasets", json={"name": "manifest takes", "kind": "supervised"}).json()
    page.goto(f"/#/datasets/{dataset['id']}")
    jsonl = "\n".join(json.dumps(row) for row in [
        {"prompt": "deep cello drone", "audio_path": "clips/cello.wav"},
        {"prompt": "bright marimba", "audio_path": "marimba.wav"}])
    page.get_by_label("choose files").set_input_files([
        {"name": "takes.jsonl", "mimeType": "application/jsonl", "buffer": jsonl.encode()},
        {"name": "cello.wav", "mimeType": "audio/wav", "buffer": wav(110)},
        {"name": "marimba.wav", "mimeType": "audio/wav", "buffer": wav(880)},
    ])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("2 of 2 added")).to_be_visible()
    csv = 'prompt,audio_path\n"slow harp, with reverb",harp.wav\n'
    page.get_by_label("choose files").set_input_files([
        {"name": "more.csv", "mimeType": "text/csv", "buffer": csv.encode()},
        {"name": "harp.wav", "mimeType": "audio/wav", "buffer": wav(330)},
    ])
    page.get_by_role("button", name="Upload").click()
    expect(page.get_by_text("1 of 1 added")).to_be_visible()
    clips = page.locator(".items .clip")
    expect(clips).to_have_count(3)
    for prompt in ("deep cello drone", "bright marimba", "slow harp, with reverb"):
        expect(clips.filter(has_text=prompt)).to_have_count(1)
    screenshot("dataset-imported")


def test_a_wrong_clip_is_removed_once_confirmed(page, stack, screenshot) -> None:
    with stack.api() as api:
        dataset = api.post("/api/datasets", json={"name": "removal takes", "kind": "supervised"}).json()
        for prompt, frequency in (("keep this hum", 220), ("wrong take", 440)):
            api.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": prompt},
                     files={"file": ("take.wav", wav(frequency), "audio/wav")}).raise_for_status()
    page.goto(f"/#/datasets/{dataset['id']}")
    clips = page.locator(".items .clip")
    expect(clips).to_have_count(2)
    expect(page.get_by_text("2 clips")).to_be_visible()
    asked: list[str] = []

    def answer(accept: bool):
        def on_dialog(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return on_dialog

    wrong = clips.filter(has_text="wrong take")
    page.once("dialog", answer(accept=False))
    wrong.get_by_role("button", name="Remove").click()
    expect(wrong.get_by_role("button", name="Remove")).to_be_enabled()
    expect(clips).to_have_count(2)
    assert asked == ["Remove the clip “wrong take” from the dataset? Runs requested from now on will not train on it."]

    page.once("dialog", answer(accept=True))
    wrong.get_by_role("button", name="Remove").click()
    expect(clips).to_have_count(1)
    expect(clips).to_contain_text("keep this hum")
    expect(page.get_by_text("1 clip", exact=True)).to_be_visible()
    with stack.api() as api:
        assert api.get(f"/api/datasets/{dataset['id']}").json()["clip_count"] == 1
    screenshot("dataset-clip-removed")


def test_an_experiment_is_edited_and_a_run_cancelled_once_confirmed_then_retried(page, stack, screenshot) -> None:
    experiment = experiment_on_one_clip(stack, "draft", stack.training_config(max_steps=100_000))
    page.goto(f"/#/experiments/{experiment['id']}")
    page.get_by_text("Edit experiment").click()
    edit = page.locator("details.edit form")
    edit.get_by_label("Name").fill("long hum")
    edit.get_by_label("Description").fill("runs until cancelled")
    edit.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="long hum")).to_be_visible()
    expect(page.get_by_text("runs until cancelled")).to_be_visible()

    page.get_by_label("Name").last.fill("endless")
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_role("heading", name="endless")).to_be_visible()
    asked: list[str] = []

    def answer(accept: bool):
        def on_dialog(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()
        return on_dialog

    page.once("dialog", answer(accept=False))
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("button", name="Cancel run")).to_be_enabled()
    assert asked == ["Cancel run endless? A running training stops at its next step."]
    run_id = page.url.rsplit("/", 1)[1]
    with stack.api() as api:
        assert api.get(f"/api/runs/{run_id}").json()["cancel_requested"] is False

    page.once("dialog", answer(accept=True))
    page.get_by_role("button", name="Cancel run").click()
    try:
        expect(page.locator(".summary .status")).to_have_text("cancelled", timeout=TRAINING)
    except AssertionError as error:  # say what the server holds: the page or the run?
        with stack.api() as api:
            status = api.get(f"/api/runs/{run_id}").json()["status"]
            history = [event["type"] for event in api.get(f"/api/runs/{run_id}/events").json()]
        raise AssertionError(f"the page did not show the run cancelled; the API says {status}: {history}") from error
    screenshot("run-cancelled")

    page.get_by_role("button", name="Retry as a new run").click()
    expect(page.get_by_role("heading", name="endless (retry)")).to_be_visible()
    retry_id = page.url.rsplit("/", 1)[1]
    with stack.api() as api:
        retried = api.get(f"/api/runs/{retry_id}").json()
        assert retried["config"] == api.get(f"/api/runs/{run_id}").json()["config"]
        api.post(f"/api/runs/{retry_id}/cancel")  # frees the trainer for the next test


def test_a_run_shown_cancelled_by_the_live_stream_stays_cancelled_when_the_cancel_is_answered_later(
        page, stack) -> None:
    """The API answers a cancel from the read models as soon as they hold the request; the run's
    RunCancelled may reach the page on the live stream before that answer does (a busy machine),
    and the answer, which still says running, must not take the page back."""
    experiment = experiment_on_one_clip(stack, "late answer", stack.training_config(max_steps=100_000))
    with stack.api() as api:
        run = api.post(f"/api/experiments/{experiment['id']}/runs", json={"name": "endless"}).json()
    page.goto(f"/#/runs/{run['id']}")
    # Training, past its start: the trainer stops it at a step boundary, well after the API answered.
    expect(page.locator(".summary .progress")).to_have_text(re.compile(r"^step [1-9]"), timeout=TRAINING)

    held = []

    def answer_later(route) -> None:
        held.append((route, route.fetch()))  # the server cancels and answers now; the page hears later

    page.route("**/api/runs/*/cancel", answer_later)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel run").click()
    status = page.locator(".summary .status")
    expect(status).to_have_text("cancelled", timeout=TRAINING)  # from the live stream
    [(route, answer)] = held
    assert answer.json()["status"] == "running"

    shown = status.element_handle()
    route.fulfill(response=answer)
    shown.wait_for_element_state("hidden")  # the page drew its summary again with the answer
    expect(status).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Retry as a new run")).to_be_visible()
