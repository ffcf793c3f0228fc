"""A tiny random MusicGen with its processor, built offline.

`python -m model.tiny DIR` writes a folder that loads through exactly the same
`from_pretrained` code as `facebook/musicgen-small`: tests and demos run on it
on machines without a GPU or the model hub. It has musicgen-small's layout
(T5 text encoder, 32 kHz EnCodec with 4 codebooks at 50 Hz, 2048-code decoder)
at a fraction of its width, so a LoRA step takes milliseconds.
"""

import argparse
import math
from pathlib import Path

import torch
from transformers import (
    EncodecConfig,
    EncodecFeatureExtractor,
    MusicgenConfig,
    MusicgenDecoderConfig,
    MusicgenForConditionalGeneration,
    MusicgenProcessor,
    T5Config,
    T5Tokenizer,
)

SAMPLING_RATE = 32_000
CODEBOOK_SIZE = 2048

# Enough words for test prompts to tokenize into something other than <unk>;
# every letter is also a piece, so any lowercase text tokenizes.
_WORDS = (
    "a the and with of in slow fast happy sad calm loud soft rock jazz pop folk techno ambient "
    "piano guitar drums bass synth violin strings voice beat song melody groove lofi upbeat "
    "dark bright warm cold heavy light 80s 90s"
).split()


def _tokenizer() -> T5Tokenizer:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [("▁" + w, -1.0) for w in _WORDS]
    pieces += [(c, -5.0) for c in letters] + [("▁" + c, -6.0) for c in letters]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def _config(vocab_size: int, channels: int, decoder_layers: int) -> MusicgenConfig:
    text = T5Config(
        vocab_size=vocab_size, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )
    audio = EncodecConfig(
        sampling_rate=SAMPLING_RATE, audio_channels=1, codebook_size=CODEBOOK_SIZE,
        target_bandwidths=[2.2], upsampling_ratios=[8, 5, 4, 4], num_filters=4, hidden_size=16,
        num_lstm_layers=1, normalize=False, use_causal_conv=False, chunk_length_s=None,
    )
    decoder = MusicgenDecoderConfig(
        vocab_size=CODEBOOK_SIZE, hidden_size=64, num_hidden_layers=decoder_layers, num_attention_heads=4,
        ffn_dim=128, num_codebooks=4 * channels, audio_channels=channels, max_position_embeddings=4096,
        pad_token_id=CODEBOOK_SIZE, bos_token_id=CODEBOOK_SIZE, decoder_start_token_id=CODEBOOK_SIZE,
    )
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    config.decoder_start_token_id = CODEBOOK_SIZE
    config.pad_token_id = CODEBOOK_SIZE
    return config


def _varied_audio(generator: torch.Generator, seconds: float = 4.0) -> torch.Tensor:
    """Tones, chords, noise bursts and sweeps: material whose encoder outputs span the latent space."""
    t = torch.arange(int(seconds * SAMPLING_RATE)) / SAMPLING_RATE
    clips = []
    for _ in range(8):
        freqs = 80 * 2 ** (torch.rand(3, generator=generator) * 6)
        tone = sum(torch.sin(2 * math.pi * f * t + torch.rand(1, generator=generator) * 6) for f in freqs)
        noise = torch.randn(t.shape, generator=generator) * torch.rand(1, generator=generator)
        sweep = torch.sin(2 * math.pi * (100 + 2000 * t / seconds) * t)
        envelope = (torch.sin(2 * math.pi * torch.rand(1, generator=generator) * 4 * t) + 1) / 2
        clips.append((tone / 3 + noise + sweep * torch.rand(1, generator=generator)) * envelope * 0.3)
    return torch.stack(clips)[:, None, :]


@torch.no_grad()
def _fill_codebooks(model: MusicgenForConditionalGeneration, generator: torch.Generator) -> None:
    """HF's EnCodec starts with all-zero codebooks, so every frame would map to code 0 and there
    would be nothing to learn. Seed each residual codebook with (noisy) residuals of real encoder
    outputs, as one k-means initialisation step would, so the codes vary with the audio."""
    encodec = model.audio_encoder
    residual = encodec.encoder(_varied_audio(generator))  # (clips, dim, frames)
    residual = residual.transpose(1, 2).reshape(-1, residual.shape[1])
    for layer in encodec.quantizer.layers:
        picks = torch.randint(0, residual.shape[0], (CODEBOOK_SIZE,), generator=generator)
        spread = residual.std(0, keepdim=True) * 0.1
        codebook = residual[picks] + torch.randn(CODEBOOK_SIZE, residual.shape[1], generator=generator) * spread
        layer.codebook.embed.copy_(codebook)
        layer.codebook.embed_avg.copy_(codebook)
        quantized = layer.decode(layer.encode(residual.T[None]))[0].T
        residual = residual - quantized


@torch.no_grad()
def _calibrate_decoder(model: MusicgenForConditionalGeneration, generator: torch.Generator) -> None:
    """A random EnCodec decoder's output is dominated by its biases: different codes decode to nearly
    the same waveform, and a test could not hear an adapter's effect. Without biases the output
    follows the codes; the last layer is then scaled to a normal loudness (std ~0.1)."""
    encodec = model.audio_encoder
    for name, parameter in encodec.decoder.named_parameters():
        if name.endswith("bias") or ".bias_" in name:
            parameter.zero_()
    codes = encodec.encode(_varied_audio(generator, seconds=1.0)).audio_codes
    std = encodec.decode(codes, [None]).audio_values.std()
    encodec.decoder.layers[-1].conv.parametrizations.weight.original0.mul_(0.1 / std)


def build_tiny_model(dir: Path, seed: int = 0, stereo: bool = False, decoder_layers: int = 2) -> Path:
    """Write a tiny random MusicGen and its processor to `dir`; return `dir`. `stereo` gives the
    layout of musicgen-stereo: one mono EnCodec applied per channel, 8 interleaved codebooks.
    `decoder_layers` beyond 2 shows what differs from layer to layer (e.g. to `torch.compile`)."""
    channels = 2 if stereo else 1
    dir = Path(dir)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tokenizer = _tokenizer()
    model = MusicgenForConditionalGeneration(_config(len(tokenizer), channels, decoder_layers))
    _fill_codebooks(model, generator)
    _calibrate_decoder(model, generator)
    # At the default std (0.02) the heads' logits are nearly flat and LoRA barely moves the loss
    # of a random model; 0.1 gives a test something to learn.
    with torch.no_grad():
        for head in model.decoder.lm_heads:
            head.weight.normal_(0.0, 0.1, generator=generator)
    # musicgen-small's sampling defaults.
    model.generation_config.update(do_sample=True, top_k=250, guidance_scale=3.0, max_length=1500)
    processor = MusicgenProcessor(
        feature_extractor=EncodecFeatureExtractor(feature_size=channels, sampling_rate=SAMPLING_RATE, padding_value=0.0),
        tokenizer=tokenizer,
    )
    dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dir)
    processor.save_pretrained(dir)
    return dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder to write the model and processor to")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stereo", action="store_true", help="musicgen-stereo's layout")
    args = parser.parse_args()
    print(build_tiny_model(args.dir, seed=args.seed, stereo=args.stereo))


if __name__ == "__main__":
    main()
