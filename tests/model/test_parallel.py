"""Data-parallel training: two gloo processes under torchrun compute what one process computes."""

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from model_testing import REPO, cli_env, parse_events


@pytest.mark.parametrize("dataset_type, batching, steps", [
    ("supervised", ["--batch-size", "3"], 4),
    ("preference", ["--batch-size", "3"], 2),
    ("supervised", ["--batch-frames", "250"], 8),
], ids=["supervised", "preference", "supervised-batch-frames"])
def test_two_processes_equal_one_process_with_the_same_batch(dataset_type, batching, steps, request, tmp_path,
                                                             run_cli, tiny_model, cache_dir):
    # Micro-batches of 3 (six clips, or three pairs): the two processes get 2 and 1 of each, unequal
    # in tokens. Packed within 250 frames, the clips of 50, 75 and 160 frames make batches [50, 50, 75],
    # [75, 75], [160] and [160]: shares of unequal tokens, and one process gets none of a single clip.
    # Dropout off: each process draws its own masks.
    dataset = request.getfixturevalue(f"{dataset_type}_jsonl")
    common = ["--dataset", dataset, "--type", dataset_type, "--name", "ddp", "--base-model", tiny_model,
              "--epochs", "2", *batching, "--lr", "0.01", "--device", "cpu", "--precision", "fp32"]
    config = tmp_path / "config.json"
    config.write_text('{"lora_dropout": 0.0, "condition_dropout": 0.0, "gradient_accumulation_steps": 1}')
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "model.training.cli", "train", *map(str, common), "--output", str(tmp_path / "two"),
               "--config", str(config)]
    # The two runs are independent: the one-process run goes on beside torchrun, whose launcher and
    # start-up leave a core idle most of the time.
    with subprocess.Popen(command, cwd=REPO, env=cli_env(cache_dir), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as torchrun:
        try:
            one = run_cli(*common, "--output", tmp_path / "one", "--config", config)
            stdout, stderr = torchrun.communicate(timeout=300)
        finally:
            torchrun.kill()  # only if it is still running: a run that timed out, or a test that failed
    assert one.returncode == 0, one.stderr
    assert torchrun.returncode == 0, stderr
    two = parse_events(stdout)
    # One process speaks: each line once.
    assert [e["type"] for e in two] == [e["type"] for e in one.events]

    steps_of = [[e for e in events if e["type"] == "step"] for events in (one.events, two)]
    assert len(steps_of[0]) == steps
    for alone, shared in zip(*steps_of):  # the same fields: DPO's rewards included
        assert alone.keys() == shared.keys()
        # Summed log-probs of different micro-batch shapes differ by float noise, which can tip the
        # accuracy of a pair whose margin is still 0 at step 1, and moves the DPO rewards (beta times
        # differences of sums of thousands of log-probs) by up to ~1e-5: those get an absolute bound.
        # The gradient norm (a sum over 10^5 LoRA gradients) is compared at 1e-4 below.
        figures = [k for k in alone if k not in ("type", "grad_norm") and not k.startswith("rewards/")]
        assert [shared[k] for k in figures] == pytest.approx([alone[k] for k in figures], rel=1e-5, abs=1e-6)
        rewards = [k for k in alone if k.startswith("rewards/") and k != "rewards/accuracies"]
        assert [shared[k] for k in rewards] == pytest.approx([alone[k] for k in rewards], abs=1e-4)
    losses = [[(e["loss"], e["grad_norm"]) for e in events] for events in steps_of]
    assert all(abs(a[0] - b[0]) < 1e-5 * abs(a[0]) and abs(a[1] - b[1]) < 1e-4 * abs(a[1])
               for a, b in zip(*losses)), losses
    weights = [load_file(tmp_path / run / "adapter" / "adapter_model.safetensors") for run in ("one", "two")]
    assert weights[0].keys() == weights[1].keys()
    # Adam's first steps move each weight by about the learning rate (0.01) whatever the gradient's
    # size, so where a gradient is near Adam's eps (1e-8) its float noise is amplified: a single
    # weight was seen 1e-3 apart on a tiny model built with two threads. The loss and gradient norm
    # above are the sharp checks of the shares; the adapter as a whole must agree to 1e-3 of its norm
    # (seen: 1e-4 to 2e-6), which a run that trained differently misses by far.
    difference = sum((weights[0][k] - weights[1][k]).square().sum() for k in weights[0]).sqrt()
    norm = sum(weights[0][k].square().sum() for k in weights[0]).sqrt()
    assert difference < 1e-3 * norm, (difference, norm)
    assert not (tmp_path / "two" / "adapter.partial").exists()
