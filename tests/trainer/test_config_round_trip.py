"""The training configuration survives every hand-over unchanged: the run request's event, the file
the trainer hands the CLI, the checkpoint and the adapter manifest hold the same TrainingConfig."""
import json
import subprocess
import sys
from pathlib import Path

from events.base import Envelope
from events.catalogue import RunRequested
from events.codec import decode, encode
from model.training import protocol
from model.training.config import TrainingConfig
from services.trainer import process
from tests.model.model_testing import PROMPTS, cli_env, write_clip, write_jsonl


def test_event_config_file_checkpoint_and_adapter_manifest_hold_the_same_config(tmp_path: Path, tiny_model: Path) -> None:
    config = TrainingConfig(base_model=str(tiny_model), num_epochs=2, max_steps=2, batch_size=1, lora_r=4,
                            lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj"], window_seconds=1.0,
                            checkpoint_every=1, learning_rate=0.003, seed=7, precision="fp32", device="cpu")
    request = RunRequested(run_id="r1", experiment_id="e1", dataset_id="d1", name="round trip", config=config)
    _, read_back = decode(encode(Envelope.wrap(request)), request.subject("cadenza"))
    assert read_back.config == config

    rows = [{"prompt": PROMPTS[i], "audio_path": write_clip(tmp_path / f"clip{i}.wav", 1.0, 220 * (i + 1), seed=i).name}
            for i in range(2)]
    dataset = write_jsonl(tmp_path / "rows.jsonl", rows)
    config_file = process.write_config(read_back.config, tmp_path / "config.json")
    assert TrainingConfig.model_validate_json(config_file.read_text()) == config
    command = process.training_command("python", 1, dataset, tmp_path / "out", "round trip", config_file,
                                       tmp_path / "features", resume=None)
    done = subprocess.run([sys.executable, *command[1:]], env=cli_env(tmp_path / "cache"),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == protocol.EXIT_OK, done.stderr

    [checkpoint] = (tmp_path / "out" / "checkpoints").glob("step-000002")
    saved = json.loads((checkpoint / "checkpoint.json").read_text())
    assert TrainingConfig(**saved["training_config"]) == config
    manifest = json.loads((tmp_path / "out" / "adapter" / "manifest.json").read_text())
    assert TrainingConfig(**manifest["training_config"]) == config
    assert (manifest["dataset_type"], manifest["base_model"]) == (config.dataset_type, config.base_model)
