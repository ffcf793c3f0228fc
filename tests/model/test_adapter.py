"""The saved adapter loads back onto the whole MusicGen bit for bit, refuses to load where its keys
do not fit, and the generate command writes a WAV file with it (test_generate.py: what it changes)."""

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from peft import get_peft_model, LoraConfig
from safetensors.torch import load_file

from model.errors import AdapterMismatchError, InputError
from model.loading import load_adapter, load_base_model
from model_testing import REPO, cli_env


def lora_weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if "lora_" in name}


def test_adapter_reloads_bit_identically_with_no_missing_keys(supervised_run, tiny_model, tmp_path):
    _, output = supervised_run
    saved = load_file(output / "adapter" / "adapter_model.safetensors")
    model = load_adapter(load_base_model(str(tiny_model), torch.device("cpu"))[0], output / "adapter")
    loaded = lora_weights(model)
    assert len(loaded) == len(saved) > 0
    for key, tensor in saved.items():  # file key "...q_proj.lora_A.weight" is module "...lora_A.default.weight"
        assert torch.equal(loaded[key.replace(".weight", ".default.weight")], tensor)
    # The final checkpoint holds the same weights, and saving the reloaded adapter reproduces the file.
    assert all(torch.equal(t, load_file(output / "checkpoints" / "step-000024" / "adapter_model.safetensors")[k])
               for k, t in saved.items())
    model.save_pretrained(tmp_path)
    assert (tmp_path / "adapter_model.safetensors").read_bytes() == (
        output / "adapter" / "adapter_model.safetensors").read_bytes()


def test_adapter_saved_from_the_decoder_alone_is_refused(tiny_model, tmp_path):
    # The peer's bug: LoRA around model.decoder, saved, then loaded onto the whole model. peft only
    # warns and the adapter does nothing; load_adapter must refuse.
    decoder = load_base_model(str(tiny_model), torch.device("cpu"))[0].decoder
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(decoder, config).save_pretrained(tmp_path)
    with pytest.raises(AdapterMismatchError, match="missing keys"):
        with pytest.warns(UserWarning, match="missing adapter keys"):  # all peft itself does
            load_adapter(load_base_model(str(tiny_model), torch.device("cpu"))[0], tmp_path)
    with pytest.raises(InputError, match="not an adapter folder"):
        load_adapter(load_base_model(str(tiny_model), torch.device("cpu"))[0], tmp_path / "nothing")


def test_missing_base_model_folder_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_base_model(str(tmp_path / "nowhere"), torch.device("cpu"))


def test_generate_command_writes_a_wav(supervised_run, tiny_model, tmp_path, cache_dir):
    _, output = supervised_run
    out = tmp_path / "sample.wav"
    command = [sys.executable, "-m", "model.generate", "--prompt", "calm ambient synth", "--base-model",
               str(tiny_model), "--adapter", str(output / "adapter"), "--seconds", "0.5", "--seed", "1", "--out",
               str(out)]
    subprocess.run(command, cwd=REPO, env=cli_env(cache_dir), check=True, capture_output=True)
    audio, rate = sf.read(out)
    assert rate == 32_000 and audio.shape == (16_000,) and np.isfinite(audio).all() and np.abs(audio).max() > 0.01
