"""An outside program (examples/deploy_adapters.py, nats-py only) learns of each new adapter from the
stream, downloads it from the object store and checks it is the adapter the event announced."""
from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "deploy_adapters.py"


async def test_the_deployment_example_receives_and_verifies_a_new_adapter(cadenza, training_config, tmp_path):
    deployer = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--nats-url", cadenza.settings.nats_url,
        "--namespace", cadenza.settings.namespace, "--out", str(tmp_path / "deployed"), "--count", "1",
        stdout=asyncio.subprocess.PIPE,
    )
    cadenza.start_trainer()
    experiment = await cadenza.supervised_experiment(training_config(max_steps=2), name="ambient")
    run = await cadenza.request_run(experiment, name="night")

    stdout, _ = await asyncio.wait_for(deployer.communicate(), timeout=180)

    assert deployer.returncode == 0
    [deployed] = [json.loads(line) for line in stdout.decode().splitlines()]
    adapter = await cadenza.get(f"/api/adapters/{deployed['adapter_id']}")
    assert (deployed["run_id"], deployed["name"], deployed["sha256"]) == (run["id"], "ambient-night", adapter["sha256"])
    assert hashlib.sha256(Path(deployed["path"]).read_bytes()).hexdigest() == adapter["sha256"]
