"""Reading training audio: decode, check, mix, resample, cut into windows."""

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from model.errors import InputError

# A clip whose peak stays below -60 dBFS has nothing in it to learn from.
SILENCE_PEAK = 10 ** (-60 / 20)
# A window remainder shorter than this (50 frames at 50 Hz) is dropped rather than trained on.
MIN_WINDOW_SECONDS = 1.0


def load_audio(path: Path, sampling_rate: int, channels: int) -> np.ndarray:
    """Decode `path` (wav, flac, ogg, mp3, ...) to float32 of shape (channels, samples) at
    `sampling_rate`. Raises InputError naming the file if it is missing, undecodable, empty,
    corrupt (non-finite samples) or silent."""
    if not path.is_file():
        raise InputError(f"{path}: audio file not found")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise InputError(f"{path}: cannot decode audio ({error})") from None
    if data.shape[0] == 0:
        raise InputError(f"{path}: audio file is empty (no samples)")
    if not np.isfinite(data).all():
        raise InputError(f"{path}: audio is corrupt (contains NaN or infinite samples)")
    if np.abs(data).max() < SILENCE_PEAK:
        raise InputError(f"{path}: audio is silent (peak below -60 dBFS)")
    data = _mix(data, channels)
    # Channels in anti-phase (left = -right) cancel when mixed down: check what the model would get.
    if np.abs(data).max() < SILENCE_PEAK:
        raise InputError(f"{path}: audio is silent after mixing to mono (peak below -60 dBFS): its channels cancel")
    if rate != sampling_rate:
        data = soxr.resample(data, rate, sampling_rate, quality="HQ")
    return np.ascontiguousarray(data.T, dtype=np.float32)


def _mix(data: np.ndarray, channels: int) -> np.ndarray:
    """(samples, file channels) -> (samples, channels)."""
    if data.shape[1] == channels:
        return data
    if channels == 1:
        return data.mean(axis=1, keepdims=True)
    if data.shape[1] == 1:
        return np.repeat(data, channels, axis=1)
    # More channels than the model has (e.g. 5.1 into stereo): keep the front pair.
    return data[:, :channels]


def split_windows(audio: np.ndarray, sampling_rate: int, window_seconds: float, path: Path) -> list[np.ndarray]:
    """Cut (channels, samples) into consecutive windows of `window_seconds`, dropping a remainder
    shorter than MIN_WINDOW_SECONDS. A clip shorter than that is an InputError naming `path`."""
    window = int(round(window_seconds * sampling_rate))
    minimum = int(MIN_WINDOW_SECONDS * sampling_rate)
    if audio.shape[1] < minimum:
        seconds = audio.shape[1] / sampling_rate
        raise InputError(f"{path}: audio is {seconds:.2f} s long, shorter than {MIN_WINDOW_SECONDS:g} s")
    windows = [audio[:, start : start + window] for start in range(0, audio.shape[1], window)]
    if len(windows) > 1 and windows[-1].shape[1] < minimum:
        windows.pop()
    return windows
