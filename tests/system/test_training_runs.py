"""A user requests a run through the API and a trainer turns it into real training and an adapter."""
from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile

from services.trainer.run import adapter_id_for


async def test_a_supervised_run_trains_registers_its_adapter_and_keeps_its_history(cadenza, tiny_model, training_config):
    cadenza.start_trainer("trainer-a")
    experiment = await cadenza.supervised_experiment(training_config(), name="lofi")

    run = await cadenza.request_run(experiment, name="first")
    run = await cadenza.wait_for_run(run["id"])

    assert run["status"] == "completed", run
    assert (run["attempt"], run["steps"], run["error"]) == (1, 6, None)
    assert run["adapter_id"] == adapter_id_for(run["id"])

    metrics = await cadenza.get(f"/api/runs/{run['id']}/metrics")
    train = [m for m in metrics if m["split"] == "train"]
    assert [m["step"] for m in train] == [1, 2, 3, 4, 5, 6]
    losses = [m["loss"] for m in train]
    assert all(math.isfinite(loss) and loss > 0 for loss in losses)
    assert losses[-1] < losses[0] - 0.1, f"the loss did not go down: {losses}"
    assert all(m["learning_rate"] is not None and m["grad_norm"] is not None for m in train)
    assert run["final_loss"] == losses[-1]

    adapter = await cadenza.get(f"/api/adapters/{run['adapter_id']}")
    assert (adapter["name"], adapter["run_id"], adapter["experiment_id"]) == ("lofi-first", run["id"], experiment["id"])
    assert (adapter["base_model"], adapter["dataset_type"], adapter["final_loss"]) == (str(tiny_model), "supervised", losses[-1])
    assert adapter["lora_config"]["lora_r"] == 4
    download = await cadenza.client.get(f"/api/adapters/{run['adapter_id']}/download")
    assert download.status_code == 200
    assert hashlib.sha256(download.content).hexdigest() == adapter["sha256"]
    names = set(zipfile.ZipFile(io.BytesIO(download.content)).namelist())
    assert {"adapter_config.json", "adapter_model.safetensors", "manifest.json"} <= names

    events = await cadenza.get(f"/api/runs/{run['id']}/events")
    types = [event["type"] for event in events]
    assert [event["seq"] for event in events] == sorted(event["seq"] for event in events)
    assert types[:2] == ["RunRequested", "RunStarted"]
    assert types.index("DatasetExported") < types.index("LossReported")
    assert types[-2:] == ["AdapterSaved", "RunCompleted"]
    assert types.count("LossReported") == 6 and types.count("CheckpointSaved") == 3
    assert types.index("CheckpointSaved") > types.index("LossReported")
    started = events[1]["payload"]
    assert (started["attempt"], started["trainer_id"]) == (1, "trainer-a")
    [exported] = [event["payload"] for event in events if event["type"] == "DatasetExported"]
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(download.content)).read("manifest.json"))
    assert exported["rows"] == 1 and exported["digest"] == manifest["dataset_digest"]
    assert "RunLogged" in types

    logs = await cadenza.get(f"/api/runs/{run['id']}/logs")
    assert any("encoding" in line["line"] for line in logs), logs[:5]


async def test_a_preference_run_trains_with_dpo_and_reports_its_rewards(cadenza, tiny_model, training_config):
    cadenza.start_trainer()
    experiment = await cadenza.preference_experiment(training_config(max_steps=4))

    run = await cadenza.wait_for_run((await cadenza.request_run(experiment))["id"])

    assert run["status"] == "completed", run
    metrics = await cadenza.get(f"/api/runs/{run['id']}/metrics")
    assert [m["step"] for m in metrics if m["split"] == "train"] == [1, 2, 3, 4]
    first = metrics[0]
    assert abs(first["loss"] - math.log(2)) < 1e-3, "DPO starts at log 2 (the adapter starts as a no-op)"
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"} <= set(first["metrics"])
    adapter = await cadenza.get(f"/api/adapters/{run['adapter_id']}")
    assert adapter["dataset_type"] == "preference"
