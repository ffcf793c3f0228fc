"""`cadenza up` listening beyond loopback: the API wants its token, every service is on the private
nats-server as its own user, and a run is trained end to end without one permission refused."""
from __future__ import annotations

import io
import json
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile

from tests.infra.test_up import cadenza_up, environment, stop


def tone() -> bytes:
    t = np.arange(32_000) / 32_000
    buffer = io.BytesIO()
    soundfile.write(buffer, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 32_000, format="WAV")
    return buffer.getvalue()


def test_up_beyond_loopback_trains_a_run_with_a_token_and_nats_users(data_dir: Path, tiny_model: Path) -> None:
    env = environment(CADENZA_MODEL_DIRS=str(tiny_model.parent))
    with cadenza_up(data_dir, env, "--host", "0.0.0.0") as (process, url):
        url = url.replace("0.0.0.0", "127.0.0.1")
        token = (data_dir / "api-token").read_text().strip()
        assert (data_dir / "api-token").stat().st_mode & 0o077 == 0
        assert httpx.get(f"{url}/api/datasets").status_code == 401
        api = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        dataset = api.post("/api/datasets", json={"name": "tones", "kind": "supervised"}).json()
        assert api.post(f"/api/datasets/{dataset['id']}/clips", data={"prompt": "a tone"},
                        files={"file": ("tone.wav", tone())}).status_code == 201
        config = {"base_model": str(tiny_model), "device": "cpu", "precision": "fp32", "max_steps": 2,
                  "num_epochs": 100, "batch_size": 1, "lora_r": 4, "lora_alpha": 8, "checkpoint_every": 1}
        experiment = api.post("/api/experiments", json={"name": "e", "dataset_id": dataset["id"], "config": config})
        assert experiment.status_code == 201, experiment.text
        run = api.post(f"/api/experiments/{experiment.json()['id']}/runs", json={}).json()
        deadline = time.monotonic() + 300  # a bound on waiting, not a measurement
        while not run["finished"] and time.monotonic() < deadline:
            time.sleep(0.25)
            run = api.get(f"/api/runs/{run['id']}").json()
        assert run["status"] == "completed", run
        adapter = api.get("/api/adapters").json()[0]
        download = api.get(f"/api/adapters/{adapter['id']}/download")
        assert download.status_code == 200 and download.headers["X-Content-Type-Options"] == "nosniff"
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert stop(process, signal.SIGINT) == 0
        output = process.stdout.read()

    nats_log = (data_dir / "nats" / "nats-server.log").read_text()
    assert "Permissions Violation" not in nats_log  # every service could do all its work
    assert "Authorization Violation" not in nats_log
    for password in json.loads((data_dir / "nats" / "users.json").read_text()).values():
        assert password not in output
    assert token not in output
