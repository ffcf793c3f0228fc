"""MusicGen's sampling loop: text → audio codes in MusicGen's delay pattern → audio.

It does what `MusicgenForConditionalGeneration.generate` does for sampling (same logits processors in
the same order, same random draws: the same seed gives the same codes, tested), with what a service
needs and `generate` lacks for MusicGen:
- a static KV cache: MusicGen's `generate` ignores `cache_implementation="static"`, and a cache passed
  in is filled twice (it runs the prefill twice), so it cannot be used there;
- a forward that can be compiled once per shape (`torch.compile` with CUDA graphs needs the static cache),
  with the first step (the prefill) uncompiled and each later step marked as a new CUDA-graph step;
- a check between decoding steps for cancellation, and progress after each step;
- its own random generator, so concurrent callers do not share torch's global one.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from transformers import DynamicCache, EncoderDecoderCache, MusicgenForConditionalGeneration, StaticCache
from transformers.generation.logits_process import (
    ClassifierFreeGuidanceLogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.modeling_outputs import BaseModelOutput


# The static cache's length is rounded up to a multiple of this many steps (10 s of audio at 50 Hz),
# so requests of similar durations share one compiled forward instead of compiling one each.
STATIC_CACHE_BUCKET = 512


class GenerationCancelled(Exception):
    """`should_stop` returned True between two decoding steps."""


@dataclass(frozen=True)
class Sampling:
    guidance_scale: float  # classifier-free guidance; 1 turns it off
    temperature: float
    top_k: int  # 0 turns it off
    top_p: float  # 1 turns it off


def logits_processors(sampling: Sampling) -> LogitsProcessorList:
    """The processors MusicGen's `generate` builds for these settings, in its order."""
    processors = LogitsProcessorList()
    if sampling.guidance_scale > 1:
        processors.append(ClassifierFreeGuidanceLogitsProcessor(sampling.guidance_scale))
    if sampling.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        processors.append(TopKLogitsWarper(top_k=sampling.top_k))
    if sampling.top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p=sampling.top_p))
    return processors


def decoding_steps(model: MusicgenForConditionalGeneration, seconds: float) -> int:
    """Steps for `seconds` of audio: one per frame, plus the delay pattern's lag of the last codebook."""
    frames = max(1, round(seconds * model.config.audio_encoder.frame_rate))
    return frames + model.config.decoder.num_codebooks // model.config.decoder.audio_channels - 1


@torch.no_grad()
def sample_audio(
    model: MusicgenForConditionalGeneration,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    steps: int,
    sampling: Sampling,
    generator: torch.Generator,
    forward: Callable[..., object],
    static_cache: bool,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    cuda_graphs: bool = False,
) -> torch.Tensor:
    """Sample `steps` decoding steps for each prompt row of `input_ids`; return the decoded audio,
    (rows, channels, samples) in the audio encoder's dtype. `forward` is `model`'s forward, maybe
    compiled, with CUDA graphs if `cuda_graphs`. Raises GenerationCancelled as soon as
    `should_stop()` is true between two steps."""
    decoder = model.decoder
    guided = sampling.guidance_scale > 1
    text = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    if guided:  # the null condition: zero text states, fully masked (as MusicGen's generate does)
        text = torch.cat([text, torch.zeros_like(text)])
        attention_mask = torch.cat([attention_mask, torch.zeros_like(attention_mask)])
    encoder_outputs = BaseModelOutput(last_hidden_state=text)

    rows = input_ids.shape[0]
    start = model.generation_config.decoder_start_token_id
    codes = torch.full((rows * decoder.num_codebooks, 1), start, dtype=torch.long, device=input_ids.device)
    codes, pattern = decoder.build_delay_pattern_mask(codes, pad_token_id=start, max_length=steps + 1)
    if static_cache:
        length = math.ceil((steps + 1) / STATIC_CACHE_BUCKET) * STATIC_CACHE_BUCKET
        self_cache = StaticCache(config=decoder.config, max_cache_len=length)
    else:
        self_cache = DynamicCache()
    cache = EncoderDecoderCache(self_cache, DynamicCache())
    processors = logits_processors(sampling)

    for step in range(steps):
        if should_stop is not None and should_stop():
            raise GenerationCancelled(f"cancelled after {step} of {steps} steps")
        last = decoder.apply_delay_pattern_mask(codes, pattern)[:, -1:]
        # The first step fills the cross-attention cache and allocates the static cache's tensors: it
        # runs uncompiled (transformers' StaticCache expects an eager prefill), so that the tensors
        # every later step reads are not outputs of a CUDA graph, which its next replay overwrites.
        if step > 0 and cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the last step's graph outputs are used up
        outputs = (forward if step > 0 else model.forward)(
            encoder_outputs=encoder_outputs,
            attention_mask=attention_mask,
            decoder_input_ids=last.repeat(2, 1) if guided else last,
            past_key_values=cache,
            use_cache=True,
            return_dict=True,
        )
        scores = processors(codes, outputs.logits[:, -1].float())
        next_codes = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1, generator=generator)
        codes = torch.cat([codes, next_codes], dim=-1)
        if on_progress is not None:
            on_progress(step + 1, steps)

    codes = decoder.apply_delay_pattern_mask(codes, pattern)
    codes = codes[codes != start].reshape(rows, decoder.num_codebooks, -1)[None]
    return decode_codes(model, codes)


def decode_codes(model: MusicgenForConditionalGeneration, codes: torch.Tensor) -> torch.Tensor:
    """EnCodec codes (1, rows, codebooks, frames) → audio (rows, channels, samples); a stereo MusicGen
    interleaves its channels' codebooks and decodes each channel with the same mono EnCodec."""
    scales = [None] * codes.shape[1]
    if model.config.decoder.audio_channels == 1:
        return model.audio_encoder.decode(codes, audio_scales=scales).audio_values
    left = model.audio_encoder.decode(codes[:, :, ::2], audio_scales=scales).audio_values
    right = model.audio_encoder.decode(codes[:, :, 1::2], audio_scales=scales).audio_values
    return torch.cat([left, right], dim=1)
