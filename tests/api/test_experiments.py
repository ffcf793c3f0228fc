"""A user sets up an experiment: a dataset plus the default training config of its runs."""
from __future__ import annotations


async def test_an_experiment_is_created_listed_and_changed(api, client, stored):
    first = await api.dataset(name="lofi")
    second = await api.dataset(name="jazz")

    experiment = await api.experiment(first["id"], {"epochs": 2, "lora_r": 4}, name="piano")
    assert experiment["config"] == {"num_epochs": 2, "lora_r": 4}  # the older name `epochs` is `num_epochs`
    assert (experiment["name"], experiment["dataset_id"], experiment["runs"]) == ("piano", first["id"], [])
    assert [e["id"] for e in (await client.get("/api/experiments")).json()] == [experiment["id"]]

    response = await client.patch(
        f"/api/experiments/{experiment['id']}",
        json={"name": "jazz piano", "description": "more swing", "dataset_id": second["id"], "config": {"lora_r": 8}},
    )

    assert response.status_code == 200, response.text
    changed = (await client.get(f"/api/experiments/{experiment['id']}")).json()
    assert changed == response.json()
    assert (changed["name"], changed["description"], changed["dataset_id"], changed["config"]) == (
        "jazz piano", "more swing", second["id"], {"lora_r": 8}
    )
    assert changed["updated_at"] > experiment["updated_at"]

    # Fields left out stay as they are.
    renamed = (await client.patch(f"/api/experiments/{experiment['id']}", json={"name": "swing"})).json()
    assert (renamed["name"], renamed["description"], renamed["config"]) == ("swing", "more swing", {"lora_r": 8})


async def test_bad_experiment_input_gets_its_status_and_message_and_changes_nothing(api, client, refused_unchanged):
    dataset = await api.dataset()
    experiment = await api.experiment(dataset["id"], {"lora_r": 4})
    path = f"/api/experiments/{experiment['id']}"
    cases = [
        ("config with lora_r 0", client.post("/api/experiments", json={
            "name": "x", "dataset_id": dataset["id"], "config": {"lora_r": 0}}),
         422, ["body", "config", "lora_r"], "greater than or equal to 1"),
        ("unknown dataset", client.post("/api/experiments", json={"name": "x", "dataset_id": "nope", "config": {}}),
         404, None, "dataset 'nope' not found"),
        ("no name", client.post("/api/experiments", json={"dataset_id": dataset["id"], "config": {}}),
         422, ["body", "name"], "Field required"),
        ("patch to an unknown field", client.patch(path, json={"config": {"warmup": 10}}),
         422, ["body", "config", "warmup"], "Extra inputs are not permitted"),
        ("patch to an unknown dataset", client.patch(path, json={"dataset_id": "nope"}),
         404, None, "dataset 'nope' not found"),
        ("patch of an unknown experiment", client.patch("/api/experiments/nope", json={"name": "y"}),
         404, None, "experiment 'nope' not found"),
    ]
    for case, request, status, loc, message in cases:
        await refused_unchanged(case, request, status, loc, message)
