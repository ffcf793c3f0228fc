"""What the decoder trains on, computed once: EnCodec codes of every audio window and text-encoder
states of every prompt.

Both encoders are frozen, so their outputs depend only on their weights and their input. They are
cached on disk under keys that hash exactly those (encoder weights + config, audio file bytes +
window length; text encoder weights + token ids), so every epoch and every later run on the same
data skips them instead of re-running both encoders on every step.
"""

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

from model.audio import load_audio, split_windows
from model.data import Row
from model.errors import Stopped


def default_cache_dir() -> Path:
    if "CADENZA_CACHE_DIR" in os.environ:
        return Path(os.environ["CADENZA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cadenza"


@dataclass
class Example:
    """One training example: a prompt's text states and one window of audio codes per side
    (one side for supervised rows, chosen then rejected for preference rows)."""

    row: int  # index of the dataset row it came from (the validation split is by row)
    text: torch.Tensor  # (text tokens, text hidden size) float32
    codes: tuple[torch.Tensor, ...]  # each (codebooks, frames) int64


def module_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256(json.dumps(module.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


class FeatureCache:
    """Tensors on disk under content-hash keys; written atomically so concurrent runs can share it."""

    def __init__(self, root: Path):
        self.root = root

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.pt"

    def get(self, kind: str, key: str) -> object | None:
        path = self._path(kind, key)
        if not path.is_file():
            return None
        try:
            return torch.load(path, weights_only=True)
        except Exception:  # a truncated or foreign file: recompute and overwrite it
            return None

    def put(self, kind: str, key: str, value: object) -> None:
        path = self._path(kind, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        torch.save(value, partial)
        partial.replace(path)


@torch.no_grad()
def text_states(model: MusicgenForConditionalGeneration, processor: MusicgenProcessor, prompt: str) -> torch.Tensor:
    """(tokens, hidden) states of one prompt; run alone so no padding can change them."""
    ids = processor.tokenizer(prompt, return_tensors="pt").input_ids.to(model.device)
    return model.text_encoder(input_ids=ids).last_hidden_state[0].float().cpu()


@torch.no_grad()
def audio_codes(model: MusicgenForConditionalGeneration, window: torch.Tensor) -> torch.Tensor:
    """(codebooks, frames) codes of one (channels, samples) window. Stereo MusicGen encodes each
    channel separately and interleaves the codebooks left, right, left, right..."""
    encoder = model.audio_encoder
    channels = [window[c : c + 1][None].to(model.device) for c in range(window.shape[0])]
    codes = [encoder.encode(x).audio_codes[0, 0] for x in channels]  # each (codebooks per channel, frames)
    return torch.stack(codes, dim=1).flatten(0, 1).cpu() if len(codes) > 1 else codes[0].cpu()


def compute_features(
    model: MusicgenForConditionalGeneration,
    processor: MusicgenProcessor,
    rows: list[Row],
    audio_sha256: dict[Path, str],
    window_seconds: float,
    cache: FeatureCache,
    should_stop: Callable[[], bool] = lambda: False,
) -> list[Example]:
    """Examples for every row: preference rows pair the chosen and rejected clips window by window,
    up to the shorter clip's window count."""
    rate = model.config.audio_encoder.sampling_rate
    channels = model.config.decoder.audio_channels
    audio_digest = hashlib.sha256(f"{module_digest(model.audio_encoder)}|{channels}".encode()).hexdigest()
    text_digest = module_digest(model.text_encoder)

    def codes_for(path: Path) -> list[torch.Tensor]:
        key = hashlib.sha256(f"{audio_digest}|{audio_sha256[path]}|{window_seconds}".encode()).hexdigest()
        windows = cache.get("codes", key)
        if windows is None:
            audio = torch.from_numpy(load_audio(path, rate, channels))
            windows = [audio_codes(model, w).to(torch.int16) for w in split_windows(audio, rate, window_seconds, path)]
            cache.put("codes", key, windows)
        return [w.long() for w in windows]

    def text_for(prompt: str) -> torch.Tensor:
        ids = processor.tokenizer(prompt).input_ids
        key = hashlib.sha256(f"{text_digest}|{ids}".encode()).hexdigest()
        states = cache.get("text", key)
        if states is None:
            states = text_states(model, processor, prompt)
            cache.put("text", key, states)
        return states

    examples = []
    for index, row in enumerate(tqdm(rows, desc="encoding dataset", unit="row", leave=False)):
        if should_stop():
            raise Stopped
        text = text_for(row.prompt)
        sides = [codes_for(path) for path in row.audio]
        for codes in zip(*sides):  # zip stops at the shorter side
            examples.append(Example(row=index, text=text, codes=codes))
    return examples
