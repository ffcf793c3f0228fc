"""Reading what an uploaded file is: decoded in full with soundfile, so a file that only looks like
audio (a good header over corrupt or truncated data) is refused at upload, not at training.

Decoding is bounded: a small compressed file can decode to hours of many-channel audio (a
"decompression bomb"), so the channel count is checked from the header and the decoded length and
size are checked block by block while decoding, which stops at the first limit passed."""
from __future__ import annotations

import io
from dataclasses import dataclass

import soundfile

# Content types of the formats soundfile reads, by soundfile's format name.
CONTENT_TYPES = {
    "WAV": "audio/wav",
    "WAVEX": "audio/wav",
    "FLAC": "audio/flac",
    "OGG": "audio/ogg",
    "MP3": "audio/mpeg",
    "AIFF": "audio/aiff",
}
# Decoded size is counted as 16-bit PCM, the size of the audio without compression.
DECODED_BYTES_PER_SAMPLE = 2
BLOCK_FRAMES = 65536


class UndecodableAudio(ValueError):
    """The bytes are not audio soundfile can decode, or hold no frames."""


class AudioOverLimit(ValueError):
    """The audio decodes to more than a limit allows; `limit` names the setting (its variable)."""

    def __init__(self, limit: str, message: str) -> None:
        super().__init__(message)
        self.limit = limit


@dataclass(frozen=True)
class AudioLimits:
    max_seconds: float
    max_channels: int
    # Decoded bytes (16-bit PCM) per uploaded byte.
    max_expansion: float


@dataclass(frozen=True)
class AudioInfo:
    format: str
    duration_seconds: float
    sample_rate: int
    channels: int

    @property
    def extension(self) -> str:
        return {"WAVEX": "wav", "MP3": "mp3"}.get(self.format, self.format.lower())


def content_type(format: str) -> str:
    return CONTENT_TYPES.get(format, "application/octet-stream")


def inspect_audio(data: bytes, limits: AudioLimits) -> AudioInfo:
    """Decode every frame of `data` and say what it is; raises UndecodableAudio saying why not, or
    AudioOverLimit as soon as the audio passes one of `limits`. Blocking: run it in a thread."""
    if not data:
        raise UndecodableAudio("the file is empty")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            if audio.channels > limits.max_channels:
                raise AudioOverLimit(
                    "CADENZA_MAX_AUDIO_CHANNELS",
                    f"the audio has {audio.channels} channels; at most {limits.max_channels} are accepted "
                    f"(CADENZA_MAX_AUDIO_CHANNELS)",
                )
            max_frames = limits.max_seconds * audio.samplerate
            max_decoded_bytes = limits.max_expansion * len(data)
            # Count decoded frames: headers of compressed formats may not state the length exactly.
            frames = 0
            for block in audio.blocks(blocksize=BLOCK_FRAMES):
                frames += len(block)
                if frames > max_frames:
                    raise AudioOverLimit(
                        "CADENZA_MAX_AUDIO_SECONDS",
                        f"the audio is longer than the limit of {limits.max_seconds:g} s (CADENZA_MAX_AUDIO_SECONDS)",
                    )
                if frames * audio.channels * DECODED_BYTES_PER_SAMPLE > max_decoded_bytes:
                    raise AudioOverLimit(
                        "CADENZA_MAX_AUDIO_EXPANSION",
                        f"the audio decodes to more than {limits.max_expansion:g} times its uploaded size as "
                        f"16-bit PCM (CADENZA_MAX_AUDIO_EXPANSION)",
                    )
            info = AudioInfo(
                format=audio.format,
                duration_seconds=frames / audio.samplerate,
                sample_rate=audio.samplerate,
                channels=audio.channels,
            )
    except (soundfile.LibsndfileError, RuntimeError, EOFError) as error:
        # libsndfile's own words, without the "Error opening <BytesIO object at 0x…>:" prefix.
        reason = getattr(error, "error_string", None) or str(error)
        raise UndecodableAudio(f"not decodable audio: {reason}") from error
    if frames == 0:
        raise UndecodableAudio("the audio has no frames (zero duration)")
    return info
