"""Bounded uploads: what one file may decode to (duration, channels, expansion), what one dataset
may hold (clips, bytes), and the decoding kept off the event loop."""
from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import replace

import numpy as np
import pytest
import soundfile

from services.api import commands


@pytest.fixture
def settings(settings):
    return replace(settings, max_audio_seconds=3.0, max_dataset_clips=3, max_dataset_bytes=400_000)


def silence(seconds: float, format: str = "FLAC", sample_rate: int = 16_000) -> bytes:
    """Silence compresses to almost nothing: the shape of a decompression bomb."""
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(int(seconds * sample_rate), dtype=np.float32), sample_rate, format=format)
    return buffer.getvalue()


async def test_audio_past_each_decoding_limit_is_refused_naming_the_limit(api, refused_unchanged, tone):
    dataset = await api.dataset()
    cases = [
        ("too long", tone("WAV", seconds=3.5), "longer than the limit of 3 s (CADENZA_MAX_AUDIO_SECONDS)"),
        ("too many channels", tone("WAV", channels=3), "3 channels; at most 2 are accepted (CADENZA_MAX_AUDIO_CHANNELS)"),
        ("expands too much", silence(2.5), "32 times its uploaded size as 16-bit PCM (CADENZA_MAX_AUDIO_EXPANSION)"),
    ]
    for case, audio, message in cases:
        await refused_unchanged(case, api.upload_clip(dataset["id"], audio), 422, ["body", "file"], message)
    # Just inside every limit: 3 s, 2 channels, a tone's FLAC (a few times smaller than its PCM).
    assert (await api.upload_clip(dataset["id"], tone("FLAC", seconds=3.0, channels=2))).status_code == 201


async def test_a_pair_with_one_file_past_a_limit_is_refused(api, refused_unchanged, tone):
    dataset = await api.dataset("preference")
    await refused_unchanged("rejected too long", api.upload_pair(dataset["id"], rejected=tone("OGG", seconds=4.0)),
                            422, ["body", "rejected"], "CADENZA_MAX_AUDIO_SECONDS")


async def test_a_dataset_takes_clips_up_to_its_quotas(api, refused_unchanged, tone):
    by_count = await api.dataset(name="by count")
    for _ in range(3):
        assert (await api.upload_clip(by_count["id"], tone(seconds=1.0))).status_code == 201
    await refused_unchanged("fourth clip", api.upload_clip(by_count["id"]), 422, ["body", "file"],
                            "holds 3 clips; the quota is 3 (CADENZA_MAX_DATASET_CLIPS)")

    by_size = await api.dataset(name="by size")
    big = tone("WAV", seconds=3.0, sample_rate=48_000)  # 288 KB of 16-bit PCM
    assert (await api.upload_clip(by_size["id"], big)).status_code == 201
    await refused_unchanged("past the bytes", api.upload_clip(by_size["id"], big), 413, None,
                            "would pass its quota of 400000 bytes (CADENZA_MAX_DATASET_BYTES)")
    # Another dataset has quotas of its own.
    assert (await api.upload_clip((await api.dataset(name="other"))["id"], big)).status_code == 201


async def test_decoding_runs_off_the_event_loop(api, client, monkeypatch):
    """While one upload is being decoded, another request is answered: the decode is held until
    the concurrent GET has its answer, which could never happen if it ran on the event loop."""
    dataset = await api.dataset()
    answered = threading.Event()
    decoded_on = []

    def held_decode(data, limits):
        decoded_on.append(threading.current_thread())
        answered.wait(timeout=30)
        return inspect_audio(data, limits)

    inspect_audio = commands.inspect_audio
    monkeypatch.setattr(commands, "inspect_audio", held_decode)
    upload = asyncio.create_task(api.upload_clip(dataset["id"]))
    while not decoded_on:
        await asyncio.sleep(0.01)
    listing = await client.get("/api/runs")
    answered.set()

    assert listing.status_code == 200
    assert (await upload).status_code == 201
    assert decoded_on != [threading.main_thread()]
