"""Nothing a client sends can stop the system: text the database cannot hold, numbers JSON cannot
carry, values past a config field's bounds, events past the bus's message limit, audio too short to
train on. Each is refused with a 4xx naming the field, and nothing is stored."""
from __future__ import annotations

import json

import httpx


def raw_json(client: httpx.AsyncClient, method: str, url: str, body: str):
    """Send `body` as it is written: NaN, Infinity, 1e309 and lone surrogate escapes included,
    which a JSON encoder would refuse to write."""
    return client.request(method, url, content=body.encode(), headers={"content-type": "application/json"})


def raw_upload(client: httpx.AsyncClient, url: str, filename: str, audio: bytes):
    """A clip upload whose file name is sent byte for byte (httpx would escape it)."""
    boundary = "cadenza-test-boundary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="prompt"\r\n\r\ncalm\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: audio/wav\r\n\r\n").encode() + audio + f"\r\n--{boundary}--\r\n".encode()
    return client.post(url, content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"})


async def test_text_the_read_models_cannot_hold_is_refused(api, client, refused_unchanged, tone):
    dataset = await api.dataset()
    experiment = await api.experiment(dataset["id"])
    runs = f"/api/experiments/{experiment['id']}/runs"
    cases = [
        ("a NUL in a dataset name", client.post("/api/datasets", json={"name": "nul\u0000name", "kind": "supervised"}),
         422, ["body", "name"], "contains a NUL character (U+0000) at position 3"),
        ("a lone surrogate in a name", raw_json(client, "POST", "/api/datasets", '{"name": "x\\ud800y", "kind": "supervised"}'),
         422, ["body", "name"], "Input should be a valid string"),
        ("a NUL in a description", client.patch(f"/api/experiments/{experiment['id']}", json={"description": "a\u0000"}),
         422, ["body", "description"], "NUL character"),
        ("a NUL in a run name", client.post(runs, json={"name": "\u0000"}), 422, ["body", "name"], "NUL character"),
        ("a NUL in a config text", client.post(runs, json={"config": {"base_model": "tiny\u0000"}}),
         422, ["body", "config"], "base_model: contains a NUL character"),
        ("a lone surrogate deep in a config", raw_json(client, "POST", runs, '{"config": {"target_modules": ["q", "\\udc00"]}}'),
         422, ["body", "config"], "target_modules[1]: contains an unpaired surrogate"),
        ("a NUL in a prompt", api.upload_clip(dataset["id"], prompt="calm\u0000"), 422, ["body", "prompt"], "NUL character"),
        ("a NUL in a file name", raw_upload(client, f"/api/datasets/{dataset['id']}/clips", "a\u0000.wav", tone()),
         422, ["body", "file"], "the file name contains a NUL character"),
        ("a clip shorter than training needs", api.upload_clip(dataset["id"], tone("WAV", seconds=0.5)),
         422, ["body", "file"], "tone.wav: the audio is 0.500 s long; training needs at least 1 s"),
    ]
    for case, request, status, loc, message in cases:
        await refused_unchanged(case, request, status, loc, message)


async def test_numbers_json_cannot_carry_or_past_their_bounds_are_refused(api, client, refused_unchanged):
    experiment = await api.supervised_experiment()
    runs = f"/api/experiments/{experiment['id']}/runs"
    experiments = "/api/experiments"
    dataset_id = experiment["dataset_id"]
    cases = [
        ("NaN in a run config", raw_json(client, "POST", runs, '{"config": {"learning_rate": NaN}}'),
         422, ["body", "config"], "learning_rate: must be a finite number, not nan"),
        ("Infinity in an experiment config",
         raw_json(client, "POST", experiments, f'{{"name": "x", "dataset_id": "{dataset_id}", "config": {{"dpo_beta": Infinity}}}}'),
         422, ["body", "config"], "dpo_beta: must be a finite number, not inf"),
        ("1e309 in a patch", raw_json(client, "PATCH", f"{experiments}/{experiment['id']}", '{"config": {"max_grad_norm": 1e309}}'),
         422, ["body", "config"], "max_grad_norm: must be a finite number, not inf"),
        ("a huge warmup", client.post(runs, json={"config": {"warmup_steps": 10**12}}),
         422, ["body", "config", "warmup_steps"], "less than or equal to 10000000"),
        ("a huge checkpoint interval", client.post(runs, json={"config": {"checkpoint_every": 10**12}}),
         422, ["body", "config", "checkpoint_every"], "less than or equal to 10000000"),
        ("max_steps 2**63", client.post(runs, json={"config": {"max_steps": 2**63}}),
         422, ["body", "config", "max_steps"], "less than or equal to 10000000"),
        ("a huge gradient clip", client.post(runs, json={"config": {"max_grad_norm": 1e300}}),
         422, ["body", "config", "max_grad_norm"], "less than or equal to 1000000"),
    ]
    for case, request, status, loc, message in cases:
        await refused_unchanged(case, request, status, loc, message)


async def test_an_event_past_the_bus_message_limit_is_refused_with_413(api, client, refused_unchanged):
    await refused_unchanged(
        "a 2 MB description",
        client.post("/api/datasets", json={"name": "big", "kind": "supervised", "description": "x" * 2_000_000}),
        413, None, "largest field is 'description'",
    )


async def test_what_was_refused_never_broke_what_is_stored(api, client):
    """After the refusals, the same requests without the bad values are stored exactly as sent."""
    name = "ünïcødé 🎹 \U0001f3b5 \\u0000 (escaped, not a NUL)"
    dataset = await api.dataset(name=name)
    experiment = await api.experiment(dataset["id"], {"learning_rate": 1e-7, "max_grad_norm": 1e6,
                                                      "warmup_steps": 10_000_000})

    assert (await client.get(f"/api/datasets/{dataset['id']}")).json()["name"] == name
    stored = (await client.get(f"/api/experiments/{experiment['id']}")).json()["config"]
    assert json.dumps(stored, sort_keys=True) == json.dumps(
        {"learning_rate": 1e-7, "max_grad_norm": 1e6, "warmup_steps": 10_000_000}, sort_keys=True)


async def test_an_id_the_database_cannot_hold_names_nothing(api, client):
    dataset = await api.dataset()
    for path in ("/api/datasets/%00", "/api/experiments/a%00b", "/api/runs/%00/metrics",
                 f"/api/datasets/{dataset['id']}%00"):
        response = await client.get(path)
        assert response.status_code == 404, (path, response.status_code, response.text)
        assert "not found" in response.json()["detail"], path


async def test_a_base_model_name_past_its_bound_is_refused(client):
    response = await client.post("/api/generations", json={"prompt": "calm", "base_model": "a/" + "b" * 1000})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "base_model"]
