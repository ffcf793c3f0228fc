"""A user requests runs of an experiment, follows them and cancels them. The trainer is not running
in these tests: where a run must be running or finished, the test publishes what a trainer would."""
from __future__ import annotations

import asyncio
import io
import json
import zipfile

from events.base import ObjectRef
from events.catalogue import AdapterSaved, RunCancelled, RunCompleted, RunStarted
from events.subjects import subject_filter
from model.training.config import TrainingConfig


async def run_requests_on_stream(bus) -> list:
    return [s async for s in bus.events(subject_filter(bus.subject_root, "run")) if s.envelope.type == "RunRequested"]


async def test_a_requested_run_is_one_run_requested_event_with_the_full_config_and_is_queued(api, client, observer_bus, stored):
    dataset = await api.dataset()
    assert (await api.upload_clip(dataset["id"])).status_code == 201
    experiment = await api.experiment(dataset["id"], {
        "epochs": 2, "batch_size": 1, "learning_rate": 3e-4, "lora_r": 4, "lora_alpha": 8, "base_model": "acme/musicgen-tiny",
    })
    before = await stored()

    response = await client.post(f"/api/experiments/{experiment['id']}/runs", json={"config": {"learning_rate": 1e-3}})

    assert response.status_code == 201, response.text
    run = response.json()
    expected = TrainingConfig(
        num_epochs=2, batch_size=1, learning_rate=1e-3, lora_r=4, lora_alpha=8, base_model="acme/musicgen-tiny",
        dataset_type="supervised",
    ).model_dump(mode="json")
    assert (run["status"], run["attempt"], run["name"], run["config"]) == ("queued", 0, "run-1", expected)
    assert (run["experiment_id"], run["dataset_id"], run["dataset_type"]) == (experiment["id"], dataset["id"], "supervised")

    assert (await stored()).messages == before.messages + 1
    [requested] = await run_requests_on_stream(observer_bus)
    assert (requested.envelope.version, requested.event.run_id, requested.event.config.model_dump(mode="json")) == (2, run["id"], expected)

    assert (await client.get(f"/api/runs/{run['id']}")).json() == run
    assert [r["id"] for r in (await client.get("/api/runs", params={"experiment_id": experiment["id"]})).json()] == [run["id"]]
    assert (await client.get("/api/runs", params={"experiment_id": "other"})).json() == []
    summary = (await client.get(f"/api/experiments/{experiment['id']}")).json()["runs"]
    assert [(r["id"], r["status"]) for r in summary] == [(run["id"], "queued")]
    assert (await client.get(f"/api/runs/{run['id']}/metrics")).json() == []
    assert (await client.get(f"/api/runs/{run['id']}/logs")).json() == []
    events = (await client.get(f"/api/runs/{run['id']}/events")).json()
    assert [(e["seq"], e["type"], e["version"], e["payload"]["config"]) for e in events] == [
        (requested.seq, "RunRequested", 2, expected)
    ]


async def test_each_bad_run_request_gets_its_status_and_message_and_changes_nothing(api, client, refused_unchanged):
    experiment = await api.supervised_experiment({"lora_r": 4})
    empty = await api.experiment((await api.dataset(name="empty"))["id"])
    runs = f"/api/experiments/{experiment['id']}/runs"
    cases = [
        ("negative learning rate", client.post(runs, json={"config": {"learning_rate": -0.1}}),
         422, ["body", "config", "learning_rate"], "Input should be greater than 0"),
        ("lora_r 0", client.post(runs, json={"config": {"lora_r": 0}}),
         422, ["body", "config", "lora_r"], "Input should be greater than or equal to 1"),
        ("unknown field", client.post(runs, json={"config": {"lora_rank": 8}}),
         422, ["body", "config", "lora_rank"], "Extra inputs are not permitted"),
        ("dataset_type against the dataset", client.post(runs, json={"config": {"dataset_type": "preference"}}),
         422, ["body", "config", "dataset_type"], "comes from the dataset's kind ('supervised')"),
        ("a dataset with no clips", client.post(f"/api/experiments/{empty['id']}/runs", json={}),
         422, ["body"], "has no clips yet"),
        ("unknown experiment", client.post("/api/experiments/nope/runs", json={}), 404, None, "experiment 'nope' not found"),
    ]
    for case, request, status, loc, message in cases:
        await refused_unchanged(case, request, status, loc, message)


async def test_a_run_takes_the_experiment_config_as_it_is_when_requested(api, client):
    experiment = await api.supervised_experiment({"lora_r": 4, "num_epochs": 5})
    first = await api.run(experiment["id"], {"name": "baseline"})
    await client.patch(f"/api/experiments/{experiment['id']}", json={"config": {"lora_r": 32}})

    second = await api.run(experiment["id"], {"config": {"epochs": 7}})

    assert (first["name"], first["config"]["lora_r"], first["config"]["num_epochs"]) == ("baseline", 4, 5)
    assert (second["name"], second["config"]["lora_r"], second["config"]["num_epochs"]) == ("run-2", 32, 7)


async def test_a_queued_run_is_cancelled_at_once_and_never_twice(api, client, observer_bus):
    experiment = await api.supervised_experiment()
    run = await api.run(experiment["id"])

    response = await client.post(f"/api/runs/{run['id']}/cancel")

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    history = await observer_bus.history("run", run["id"])
    assert [(s.envelope.type, getattr(s.event, "attempt", None)) for s in history] == [
        ("RunRequested", None), ("RunCancelRequested", None), ("RunCancelled", 0)
    ]
    again = await client.post(f"/api/runs/{run['id']}/cancel")
    assert (again.status_code, again.json()) == (409, {"detail": f"run '{run['id']}' is already cancelled"})
    assert len(await observer_bus.history("run", run["id"])) == 3
    assert (await client.post("/api/runs/nope/cancel")).status_code == 404


async def until_run(client, run_id: str, status: str) -> dict:
    for _ in range(100):
        run = (await client.get(f"/api/runs/{run_id}")).json()
        if run["status"] == status:
            return run
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} is {run['status']}, never {status}")


async def test_a_running_run_is_asked_to_stop_and_its_trainer_cancels_it(api, client, observer_bus):
    experiment = await api.supervised_experiment()
    run = await api.run(experiment["id"])
    await observer_bus.publish(RunStarted(run_id=run["id"], attempt=1, trainer_id="trainer-a"))
    await until_run(client, run["id"], "running")

    response = await client.post(f"/api/runs/{run['id']}/cancel")

    assert response.status_code == 202, response.text
    assert (response.json()["status"], response.json()["cancel_requested"]) == ("running", True)
    assert [s.envelope.type for s in await observer_bus.history("run", run["id"])] == [
        "RunRequested", "RunStarted", "RunCancelRequested"
    ]
    await observer_bus.publish(RunCancelled(run_id=run["id"], attempt=1))
    await until_run(client, run["id"], "cancelled")
    assert (await client.post(f"/api/runs/{run['id']}/cancel")).status_code == 409


async def test_a_registered_adapter_is_listed_and_downloads_as_a_zip(api, client, observer_bus):
    experiment = await api.supervised_experiment()
    run = await api.run(experiment["id"], {"name": "r1"})
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as folder:
        folder.writestr("adapter_config.json", "{}")
    ref = await observer_bus.put_object(observer_bus.adapters_bucket, "adapter-1.zip", archive.getvalue())
    await observer_bus.publish(RunStarted(run_id=run["id"], attempt=1, trainer_id="trainer-a"))
    await observer_bus.publish(AdapterSaved(
        run_id=run["id"], adapter_id="adapter-1", experiment_id=experiment["id"], name="first try-r1", adapter=ref,
        base_model="acme/musicgen-tiny", dataset_type="supervised", lora_config={"r": 16}, final_loss=1.5,
    ))
    await observer_bus.publish(RunCompleted(run_id=run["id"], attempt=1, final_loss=1.5, steps=3, seconds=2.0, adapter_id="adapter-1"))
    completed = await until_run(client, run["id"], "completed")
    assert (completed["adapter_id"], completed["final_loss"]) == ("adapter-1", 1.5)

    [listed] = (await client.get("/api/adapters")).json()
    adapter = (await client.get("/api/adapters/adapter-1")).json()
    assert listed == adapter
    assert (adapter["run_id"], adapter["name"], adapter["sha256"], adapter["lora_config"]) == (
        run["id"], "first try-r1", ref.sha256, {"r": 16}
    )

    download = await client.get(adapter["download_url"])
    assert download.status_code == 200
    assert download.content == archive.getvalue()
    assert download.headers["content-type"] == "application/zip"
    assert 'filename="first try-r1.zip"' in download.headers["content-disposition"]
    assert ObjectRef(bucket=adapter["bucket"], name=adapter["object_name"], sha256=adapter["sha256"],
                     size=adapter["size"]) == ref


async def test_a_run_streams_its_new_events_until_its_last(api, client, observer_bus):
    experiment = await api.supervised_experiment()
    run = await api.run(experiment["id"])
    [requested] = (await client.get(f"/api/runs/{run['id']}/events")).json()

    # Resuming after RunRequested (as a reconnecting browser would) makes the test independent of
    # when the stream starts reading; the events still arrive live, after it started.
    streaming = asyncio.create_task(
        client.get(f"/api/runs/{run['id']}/stream", headers={"Last-Event-ID": str(requested["seq"])})
    )
    await asyncio.sleep(0.2)
    assert not streaming.done()
    await client.post(f"/api/runs/{run['id']}/cancel")
    response = await asyncio.wait_for(streaming, timeout=10)

    assert response.headers["content-type"].startswith("text/event-stream")
    messages = [dict(line.split(": ", 1) for line in block.splitlines()) for block in response.text.strip().split("\n\n")]
    assert [(m["id"], m["event"]) for m in messages] == [
        (str(requested["seq"] + 1), "RunCancelRequested"), (str(requested["seq"] + 2), "RunCancelled")
    ]
    states = [json.loads(m["data"])["run"] for m in messages]
    assert [(s["status"], s["cancel_requested"], s["finished"]) for s in states] == [
        ("queued", True, False), ("cancelled", True, True)]
    # A late start (a trainer that had fetched the request before the cancel) changes nothing.
    await observer_bus.publish(RunStarted(run_id=run["id"], attempt=1, trainer_id="late"))
    history = (await client.get(f"/api/runs/{run['id']}/events")).json()
    assert [(e["type"], e["run"]["status"]) for e in history][-2:] == [("RunCancelled", "cancelled"),
                                                                       ("RunStarted", "cancelled")]
    # A finished run has nothing new to stream: the stream ends at once.
    assert (await client.get(f"/api/runs/{run['id']}/stream")).text == ""
