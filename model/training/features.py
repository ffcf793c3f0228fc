"""What the decoder trains on, computed once: EnCodec codes of every audio window and text-encoder
states of every prompt.

Both encoders are frozen, so their outputs depend only on their weights and their input. They are
cached on disk under keys that hash exactly those (encoder weights + config, audio file bytes +
window length + PREPROCESSING_VERSION; text encoder weights + token ids), so every epoch and every
later run on the same data skips them.

A clip's codes are kept whole; an example is a window of them. Supervised windows are drawn at a
random offset each epoch (a function of seed and epoch, so a resumed run draws the same), as
audiocraft draws its segments. Preference windows stay fixed, so the reference model's
log-probabilities of each pair are computed once, and a pair's chosen and rejected windows are cut
at the same frames with the same length, so their summed log-ratios compare like with like.
"""

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from transformers import MusicgenForConditionalGeneration, MusicgenProcessor

from model.audio import MIN_WINDOW_SECONDS, load_audio, split_windows
from model.data import Row
from model.errors import Stopped

# Part of every audio cache key: bump it whenever decoding, mixing, resampling or chunking changes,
# so no run trains on codes the current code would not produce.
PREPROCESSING_VERSION = 2


def default_cache_dir() -> Path:
    if "CADENZA_CACHE_DIR" in os.environ:
        return Path(os.environ["CADENZA_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cadenza"


@dataclass
class Example:
    """One training example: a prompt's text states and one window of each side's audio codes
    (one side for supervised rows, chosen then rejected for preference rows)."""

    row: int  # index of the dataset row it came from (the validation split is by row)
    text: torch.Tensor  # (text tokens, text hidden size) float32
    codes: tuple[torch.Tensor, ...]  # each side's whole clip, (codebooks, clip frames) int64
    start: int  # first frame of the window
    frames: int  # window length, the same on every side

    def window(self) -> tuple[torch.Tensor, ...]:
        return tuple(side[:, self.start : self.start + self.frames] for side in self.codes)

    @property
    def slack(self) -> int:
        """How far the window could move: the shortest side's frames beyond the window."""
        return min(side.shape[1] for side in self.codes) - self.frames


def window_starts(clip_frames: int, window_frames: int, min_frames: int) -> list[int]:
    """Starts of consecutive windows of min(window, clip) frames covering the clip; a remainder of at
    least `min_frames` gets a full-length window ending at the clip's end, a shorter one is dropped."""
    frames = min(window_frames, clip_frames)
    starts = list(range(0, clip_frames - frames + 1, frames))
    if clip_frames - (starts[-1] + frames) >= min_frames:
        starts.append(clip_frames - frames)
    return starts


def epoch_windows(examples: list[Example], seed: int, epoch: int, dataset_type: str) -> list[Example]:
    """The examples of one epoch: supervised windows at offsets drawn from (seed, epoch), anywhere
    within their clip; preference windows as cut."""
    if dataset_type == "preference":
        return examples
    rng = np.random.default_rng([seed, epoch, 2])
    offsets = rng.integers(0, [e.slack + 1 for e in examples])
    return [replace(e, start=int(offset)) for e, offset in zip(examples, offsets)]


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
    """Examples for every row, windows of `window_seconds` covering each clip (see window_starts);
    a preference row is cut by its shorter clip, both sides at the same frames."""
    rate = model.config.audio_encoder.sampling_rate
    frame_rate = model.config.audio_encoder.frame_rate
    window_frames = round(window_seconds * frame_rate)
    channels = model.config.decoder.audio_channels
    audio_digest = hashlib.sha256(f"{module_digest(model.audio_encoder)}|{channels}".encode()).hexdigest()
    text_digest = module_digest(model.text_encoder)

    def codes_for(path: Path) -> torch.Tensor:
        """The clip's codes, (codebooks, frames); EnCodec runs on one window-long chunk at a time."""
        key = f"{audio_digest}|{audio_sha256[path]}|{window_seconds}|{PREPROCESSING_VERSION}"
        key = hashlib.sha256(key.encode()).hexdigest()
        chunks = cache.get("codes", key)
        if chunks is None:
            audio = torch.from_numpy(load_audio(path, rate, channels))
            chunks = [audio_codes(model, w).to(torch.int16) for w in split_windows(audio, rate, window_seconds, path)]
            cache.put("codes", key, chunks)
        return torch.cat(chunks, dim=1).long()

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
        sides = tuple(codes_for(path) for path in row.audio)
        clip_frames = min(side.shape[1] for side in sides)
        frames = min(window_frames, clip_frames)
        for start in window_starts(clip_frames, window_frames, round(MIN_WINDOW_SECONDS * frame_rate)):
            examples.append(Example(row=index, text=text, codes=sides, start=start, frames=frames))
    return examples
