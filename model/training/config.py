"""Every training hyperparameter, with its default, range and meaning.

Only pydantic and the standard library are imported here: the HTTP API validates run
configurations with this class (and answers 422 naming the field and the reason) without
loading torch.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")
# Far more optimizer steps than any LoRA fine-tuning takes, and well inside a 32-bit integer.
MAX_STEPS = 10_000_000
# 256 windows of 300 s at 50 frames per second, the largest batch batch_size and window_seconds allow,
# is 3.84 M frames: far beyond any accelerator's memory.
MAX_BATCH_FRAMES = 4_000_000


class TrainingConfig(BaseModel):
    """Hyperparameters of one LoRA fine-tuning run of MusicGen."""

    # Every bound is stated, upper ones included, so a run's config is always storable and sane.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    # What to train on.
    dataset_type: Literal["supervised", "preference"] = Field(
        "supervised",
        description="'supervised': rows of prompt + audio_path, trained with cross-entropy on the "
        "audio codes. 'preference': rows of prompt + chosen_path + rejected_path, trained with DPO.",
    )
    base_model: str = Field(
        "facebook/musicgen-small",
        min_length=1,
        max_length=1000,
        description="Hub id or local folder (saved with save_pretrained) of the MusicGen to adapt.",
    )

    # How long and how hard.
    num_epochs: int = Field(3, ge=1, le=1000, description="Passes over the training set.")
    max_steps: int | None = Field(
        None, ge=1, le=MAX_STEPS, description="Stop after this many optimizer steps even if epochs remain (None: no cap)."
    )
    batch_size: int = Field(
        2, ge=1, le=256, description="Examples per forward pass (preference: pairs per forward pass), unless "
        "batch_frames is set.",
    )
    batch_frames: int | None = Field(
        None,
        ge=1,
        le=MAX_BATCH_FRAMES,
        description="Batch by length instead of by count: each forward pass holds as many windows as fit in "
        "this many padded audio frames (windows times the batch's longest window, a preference pair counting as "
        "two; MusicGen codes 50 frames per second, so a 30 s window is 1500), and batch_size is not used. With "
        "clips of mixed lengths less compute goes to padding and every forward pass's memory is bounded by the "
        "budget. Windows of like length are packed into batches once per run and the batches' order is shuffled "
        "every epoch. A budget below the longest window (twice it for a pair) is refused at start. None: "
        "batch_size examples per pass.",
    )
    gradient_accumulation_steps: int = Field(
        1, ge=1, le=1024, description="Forward passes whose gradients are summed into one optimizer step."
    )
    learning_rate: float = Field(1e-4, gt=0, le=1.0, description="Peak AdamW learning rate, reached after warmup.")
    warmup_steps: int = Field(
        0, ge=0, le=MAX_STEPS, description="Optimizer steps of linear warmup from 0 to the peak rate; cosine decay to 0 follows."
    )
    weight_decay: float = Field(0.0, ge=0, le=1.0, description="AdamW decoupled weight decay on the LoRA weights.")
    max_grad_norm: float = Field(
        1.0, ge=0, le=1e6, description="Clip the global gradient norm to this before each step (0: no clipping)."
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="Seeds LoRA init, data order, split and dropout.")

    # The adapter.
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, le=4096, description="LoRA scaling numerator: updates are scaled by alpha / r.")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA branch's input.")
    target_modules: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        list(DEFAULT_TARGET_MODULES),
        min_length=1,
        max_length=100,
        description="Names of the decoder's Linear layers that get LoRA (self- and cross-attention projections "
        "and the feed-forward layers by default; only decoder modules carry these names).",
    )

    # The data.
    window_seconds: float = Field(
        30.0,
        ge=1.0,
        le=300.0,
        description="Clips longer than this are cut into windows of this length (MusicGen was trained on 30 s); "
        "a remainder of 1 s or more gets a window ending at the clip's end. Supervised windows move to a "
        "random offset within their clip every epoch; a preference pair is cut by its shorter clip.",
    )
    validation_split: float = Field(
        0.0, ge=0, lt=1, description="Fraction of examples held out for validation loss (0: no validation)."
    )
    condition_dropout: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Supervised runs: probability of replacing an example's text condition with the null "
        "condition, which trains the unconditional branch that classifier-free guidance uses at every "
        "generated step (MusicGen was trained with 0.1; 0: off). DPO keeps every pair's prompt.",
    )

    # Preference training.
    dpo_beta: float = Field(
        0.01,
        gt=0,
        le=10.0,
        description="DPO temperature on the summed log-probability ratios. Summed over ~1000 audio tokens per "
        "5 s of audio (4 codebooks at 50 Hz), the ratios are ~10x those of a text reply of a few hundred "
        "tokens, for which 0.1 is usual; 0.01 keeps the same per-token strength and does not saturate "
        "the sigmoid within a handful of steps.",
    )

    # Bookkeeping and hardware.
    checkpoint_every: int = Field(
        100, ge=1, le=MAX_STEPS, description="Save a resumable checkpoint every this many optimizer steps (and always at the end)."
    )
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="'bf16': the frozen decoder's weights in bfloat16 and its forward autocast to bfloat16, LoRA "
        "weights (the optimizer's master copy) in fp32; text and audio encoders and the loss stay fp32. 'auto': "
        "bf16 on GPUs that support it and on CPUs with native bf16 matrix units (AVX512-BF16/AMX), else fp32.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="'auto': CUDA when available, else CPU.")
    activation_checkpointing: bool = Field(
        False,
        description="Keep only each decoder layer's input during the forward and recompute the rest in the "
        "backward: much less activation memory (long clips, big batches, DPO) for about a third more compute.",
    )
    compile: Literal["auto", "on", "off"] = Field(
        "auto",
        description="torch.compile the decoder's layers (one compilation serves them all): faster steps after "
        "a compilation of up to a minute. 'auto': on "
        "CUDA GPUs, off on CPUs (where compiling takes longer than a CPU run gains).",
    )


def with_num_epochs(values: dict[str, Any]) -> dict[str, Any]:
    """Configuration values with the older name `epochs` (of the first stored run requests and of
    the HTTP API) renamed to TrainingConfig's `num_epochs`. Given both, they stay as they are, and
    validation refuses `epochs`."""
    if "epochs" not in values or "num_epochs" in values:
        return values
    return {("num_epochs" if key == "epochs" else key): value for key, value in values.items()}
