"""Reading what an uploaded file is: decoded in full with soundfile, so a file that only looks like
audio (a good header over corrupt or truncated data) is refused at upload, not at training."""
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


class UndecodableAudio(ValueError):
    """The bytes are not audio soundfile can decode, or hold no frames."""


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


def inspect_audio(data: bytes) -> AudioInfo:
    """Decode every frame of `data` and say what it is; raises UndecodableAudio saying why not."""
    if not data:
        raise UndecodableAudio("the file is empty")
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            # Count decoded frames: headers of compressed formats may not state the length exactly.
            frames = sum(len(block) for block in audio.blocks(blocksize=65536))
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
