"""MusicGenerator on the tiny model, fp32 on the CPU: the sampling loop equals transformers' own
generate, the seed fixes the audio, adapters change it, switching adapters never reloads the base
model, a mismatched adapter is refused, cancel and progress work, and audio files are clipped."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from peft import LoraConfig, get_peft_model

import model.generate as generate_module
from model.decoding import GenerationCancelled, Sampling, decoding_steps, sample_audio
from model.errors import AdapterMismatchError, InputError
from model.generate import GenerationRequest, MusicGenerator, write_audio
from model.loading import load_base_model

PROMPT = "slow jazz piano"


def random_adapter(tiny_model: Path, folder: Path, seed: int, on_decoder_alone: bool = False) -> Path:
    """A LoRA with random (non-zero) weights on the whole model, saved as training saves adapters;
    `on_decoder_alone` saves it from model.decoder instead, whose keys do not fit the whole model."""
    torch.manual_seed(seed)
    base = load_base_model(str(tiny_model), torch.device("cpu"))[0]
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "fc1"], init_lora_weights=False)
    get_peft_model(base.decoder if on_decoder_alone else base, config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def adapters(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {name: random_adapter(tiny_model, root / name, seed) for seed, name in enumerate(["a", "b", "c"])}


def fp32_generator(tiny_model: Path, **options) -> MusicGenerator:
    return MusicGenerator(str(tiny_model), device="cpu", precision="fp32", **options)


def audio_of(generator: MusicGenerator, **request) -> np.ndarray:
    return np.stack([s.audio for s in generator.generate(GenerationRequest(PROMPT, duration_seconds=0.5, **request))])


def lora_names(generator: MusicGenerator) -> set[str]:
    return {name for module in generator.model.modules() if hasattr(module, "lora_A") for name in module.lora_A}


@pytest.mark.parametrize("static_cache", [False, True])
@pytest.mark.parametrize("sampling", [Sampling(3.0, 1.0, 250, 1.0), Sampling(1.0, 0.7, 0, 0.9),
                                      Sampling(2.0, 1.3, 50, 0.95)])
def test_sampling_loop_equals_transformers_generate(tiny_model, sampling, static_cache):
    model, processor = load_base_model(str(tiny_model), torch.device("cpu"))
    inputs = processor(text=[PROMPT, "fast rock drums"], padding=True, return_tensors="pt")
    steps = decoding_steps(model.eval(), 0.5)
    torch.manual_seed(5)
    expected = model.generate(**inputs, do_sample=True, guidance_scale=sampling.guidance_scale, max_new_tokens=steps,
                              temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
    audio = sample_audio(model, inputs["input_ids"], inputs["attention_mask"], steps, sampling,
                         torch.Generator().manual_seed(5), model.forward, static_cache)
    assert audio.shape == expected.shape == (2, 1, 16_000)
    assert torch.equal(audio, expected)


def test_seed_fixes_the_audio_and_an_adapter_changes_it(tiny_model, adapters):
    generator = fp32_generator(tiny_model)
    base = audio_of(generator, seed=3, num_samples=2)
    assert base.shape == (2, 1, 16_000) and base.dtype == np.float32
    assert np.abs(base[0] - base[1]).max() > 1e-3  # the samples of one batch differ
    assert not np.array_equal(base, audio_of(generator, seed=4, num_samples=2))
    generator.warm("a", adapters["a"])
    tuned = audio_of(generator, seed=3, num_samples=2, adapter_id="a")
    assert np.abs(tuned - base).max() > 1e-3
    assert np.array_equal(tuned, audio_of(generator, seed=3, num_samples=2, adapter_id="a"))
    # With adapters held, the base model still generates exactly what it did before any was loaded.
    assert np.array_equal(base, audio_of(generator, seed=3, num_samples=2))


def test_switching_adapters_never_reloads_the_base_model(tiny_model, adapters, monkeypatch):
    loads = []

    def counting_load(*args, **kwargs):
        loads.append(args)
        return load_base_model(*args, **kwargs)

    monkeypatch.setattr(generate_module, "load_base_model", counting_load)
    generator = fp32_generator(tiny_model, max_adapters=2)
    base_model = generator.model
    generator.warm("a", adapters["a"])
    generator.warm("b", adapters["b"])
    first = {name: audio_of(generator, adapter_id=name) for name in ["a", "b"]}
    assert not np.array_equal(first["a"], first["b"])
    # A generator holding only "b" (and "c" before it) makes the same audio: adapters do not leak into each other.
    alone = fp32_generator(tiny_model, max_adapters=1)
    alone.warm("c", adapters["c"])
    alone.warm("b", adapters["b"])
    assert np.array_equal(audio_of(alone, adapter_id="b"), first["b"])

    audio_of(generator, adapter_id="a")  # "a" becomes the most recently used, so "b" is evicted next
    generator.warm("c", adapters["c"])
    assert generator.adapter_ids == ["a", "c"] and lora_names(generator) == {"a", "c"}
    with pytest.raises(InputError, match="adapter 'b' is not loaded"):
        generator.generate(GenerationRequest(PROMPT, adapter_id="b"))
    generator.warm("b", adapters["b"])  # evicts "a"; loaded again, "b" gives the same audio
    assert generator.adapter_ids == ["c", "b"] and lora_names(generator) == {"c", "b"}
    assert np.array_equal(audio_of(generator, adapter_id="b"), first["b"])
    assert len(loads) == 2 and generator.model is base_model  # one load per generator


def test_a_mismatched_adapter_is_refused_and_leaves_the_model_as_it_was(tiny_model, adapters, tmp_path):
    decoder_adapter = random_adapter(tiny_model, tmp_path / "decoder", seed=9, on_decoder_alone=True)
    generator = fp32_generator(tiny_model)
    base = audio_of(generator)
    with pytest.raises(AdapterMismatchError, match="missing keys"):
        with pytest.warns(UserWarning, match="missing adapter keys"):
            generator.warm("bad", decoder_adapter)
    assert generator.adapter_ids == [] and lora_names(generator) == set()
    assert np.array_equal(audio_of(generator), base)
    generator.warm("a", adapters["a"])
    with pytest.raises(AdapterMismatchError, match="missing keys"):
        generator.warm("bad", decoder_adapter)
    assert generator.adapter_ids == ["a"] and lora_names(generator) == {"a"}
    with pytest.raises(InputError, match="not an adapter folder"):
        generator.warm("nothing", tmp_path / "nothing")


def test_cancel_between_steps_and_progress(tiny_model):
    generator = fp32_generator(tiny_model)
    progress = []
    generator.generate(
        GenerationRequest(PROMPT, duration_seconds=0.5), on_progress=lambda done, total: progress.append((done, total)))
    steps = decoding_steps(generator.model, 0.5)
    assert progress == [(done, steps) for done in range(1, steps + 1)]

    seen = []
    with pytest.raises(GenerationCancelled, match=f"after 5 of {steps} steps"):
        generator.generate(GenerationRequest(PROMPT, duration_seconds=0.5), should_stop=lambda: len(seen) >= 5,
                           on_progress=lambda done, total: seen.append(done))
    assert seen == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("prompt", "  ", "prompt: must be non-empty"),
    ("duration_seconds", 0, "duration_seconds 0: must be in"),
    ("duration_seconds", 301.0, "duration_seconds 301.0"),
    ("seed", -1, "seed -1"),
    ("num_samples", 0, "num_samples 0: must be an integer from 1 to 8"),
    ("num_samples", 9, "num_samples 9"),
    ("guidance_scale", 0.5, "guidance_scale 0.5: must be >= 1"),
    ("temperature", 0.0, "temperature 0.0: must be > 0"),
    ("temperature", float("nan"), "temperature nan"),
    ("top_k", -1, "top_k -1"),
    ("top_p", 0.0, r"top_p 0.0: must be in \(0, 1\]"),
])
def test_bad_requests_name_the_field(field, value, message):
    arguments = {"prompt": PROMPT, field: value}
    with pytest.raises(InputError, match=message):
        GenerationRequest(**arguments)


def test_bf16_weights_on_the_cpu_give_finite_float32_audio(tiny_model, adapters):
    generator = MusicGenerator(str(tiny_model), device="cpu", precision="bf16")
    generator.warm("a", adapters["a"])
    lora_dtypes = {p.dtype for name, p in generator.model.named_parameters() if "lora_" in name}
    assert lora_dtypes == {torch.bfloat16} and generator.model.decoder.lm_heads[0].weight.dtype == torch.bfloat16
    assert generator.model.audio_encoder.decoder.layers[-1].conv.weight.dtype == torch.float32
    audio = audio_of(generator, adapter_id="a")
    assert audio.dtype == np.float32 and np.isfinite(audio).all() and np.abs(audio).max() > 1e-3


def test_written_audio_is_clipped_not_wrapped(tmp_path):
    audio = np.array([[0.5, 1.5, -2.0, 0.25]], dtype=np.float32)
    for suffix in [".wav", ".flac"]:
        write_audio(tmp_path / f"clip{suffix}", audio, 32_000)
        read, rate = sf.read(tmp_path / f"clip{suffix}", dtype="float32")
        assert rate == 32_000
        assert np.allclose(read, [0.5, 32767 / 32768, -1.0, 0.25], atol=1 / 32768)
    with pytest.raises(InputError, match="written as .wav or .flac"):
        write_audio(tmp_path / "clip.mp3", audio, 32_000)


def test_a_merged_adapter_generates_what_the_unmerged_one_does_and_gives_the_base_weights_back(tiny_model, adapters):
    unmerged, merging = fp32_generator(tiny_model), fp32_generator(tiny_model, merge_adapter=True)
    assert not unmerged.merge_adapter  # the CPU's default
    for generator in (unmerged, merging):
        generator.warm("a", adapters["a"])
    base = audio_of(merging, seed=3)
    weights = {name: value.clone() for name, value in merging.model.state_dict().items()}

    tuned = audio_of(merging, seed=3, adapter_id="a")
    assert np.abs(tuned - base).max() > 1e-3  # the adapter is applied
    np.testing.assert_allclose(tuned, audio_of(unmerged, seed=3, adapter_id="a"), atol=1e-5)
    with pytest.raises(GenerationCancelled):  # a cancelled request gives the weights back too
        merging.generate(GenerationRequest(PROMPT, duration_seconds=0.5, adapter_id="a"), should_stop=iter([False, True]).__next__)

    assert all(torch.equal(value, weights[name]) for name, value in merging.model.state_dict().items())
    assert np.array_equal(base, audio_of(merging, seed=3))
