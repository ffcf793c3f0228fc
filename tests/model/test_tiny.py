"""`python -m model.tiny DIR` writes a MusicGen that loads like facebook/musicgen-small and whose
codes follow the audio."""

import math
import subprocess
import sys

import torch
from transformers import AutoProcessor, MusicgenForConditionalGeneration, MusicgenProcessor

from model_testing import REPO, cli_env


def test_tiny_model_command_writes_a_loadable_musicgen(tmp_path, cache_dir):
    subprocess.run([sys.executable, "-m", "model.tiny", str(tmp_path / "tiny")], cwd=REPO, env=cli_env(cache_dir),
                   check=True, capture_output=True)
    model = MusicgenForConditionalGeneration.from_pretrained(tmp_path / "tiny")
    processor = AutoProcessor.from_pretrained(tmp_path / "tiny")
    assert isinstance(processor, MusicgenProcessor)
    assert model.config.audio_encoder.sampling_rate == 32_000 and model.decoder.num_codebooks == 4
    assert model.config.audio_encoder.frame_rate == 50 and model.config.decoder.vocab_size == 2048
    assert 2 not in processor.tokenizer("slow jazz piano").input_ids  # no <unk>

    t = torch.arange(32_000) / 32_000
    low, high = (0.3 * torch.sin(2 * math.pi * f * t)[None, None] for f in (110, 1760))
    with torch.no_grad():
        codes = [model.audio_encoder.encode(x).audio_codes[0, 0] for x in (low, high)]
    assert codes[0].shape == (4, 50)
    assert all(len(set(c[k].tolist())) > 1 for c in codes for k in range(4))  # codebooks are not all zero
    assert not torch.equal(codes[0], codes[1])
