"""Which examples share a batch, from examples to MusicGen's inputs and labels, and the per-token
log-probabilities of a forward.

MusicGen predicts its K codebooks in a delay pattern: codebook k is shifted right by k steps (stereo
models shift each left/right pair together), so at one position the decoder predicts frame t of
codebook 0 with frame t-1 of codebook 1, and so on. Labels are laid out the same way and every
position that holds no code (the delay's ramp at both ends, and the tail of a clip shorter than the
batch's longest) is the pad id, which the loss ignores.
"""

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.models.musicgen.modeling_musicgen import shift_tokens_right

from model.training.features import Example


@dataclass
class Batch:
    text: torch.Tensor  # (B, text tokens, hidden) float32, zero-padded
    text_mask: torch.Tensor  # (B, text tokens) 1 for real tokens
    labels: torch.Tensor  # (B, positions, K) codes in the delay pattern, pad id where there is none

    def to(self, device: torch.device) -> "Batch":
        return Batch(self.text.to(device), self.text_mask.to(device), self.labels.to(device))


def codebook_delays(num_codebooks: int, audio_channels: int) -> list[int]:
    return [k // audio_channels for k in range(num_codebooks)]


def delay_labels(codes: list[torch.Tensor], delays: list[int], pad_id: int) -> torch.Tensor:
    """(B, frames_max + max delay, K) labels from B code tensors of shape (K, frames_i)."""
    frames = max(c.shape[1] for c in codes)
    labels = torch.full((len(codes), frames + max(delays), len(delays)), pad_id, dtype=torch.long)
    for b, example in enumerate(codes):
        for k, delay in enumerate(delays):
            labels[b, delay : delay + example.shape[1], k] = example[k]
    return labels


def collate(
    examples: list[Example], delays: list[int], pad_id: int, condition_dropout: float = 0.0
) -> Batch:
    """Stack examples into one batch; preference examples give 2B rows, all chosen then all rejected,
    so one forward scores both. `condition_dropout` nulls an example's text condition the way
    MusicGen's classifier-free guidance does at generation time (zero states, zero mask); the draw
    is per example, so a pair's chosen and rejected rows share it."""
    sides = len(examples[0].codes)
    length = max(e.text.shape[0] for e in examples)
    text = torch.zeros(len(examples), length, examples[0].text.shape[1])
    mask = torch.zeros(len(examples), length, dtype=torch.long)
    for b, example in enumerate(examples):
        text[b, : example.text.shape[0]] = example.text
        mask[b, : example.text.shape[0]] = 1
    if condition_dropout > 0:
        keep = (torch.rand(len(examples)) >= condition_dropout).long()
        text, mask = text * keep[:, None, None], mask * keep[:, None]
    windows = [example.window() for example in examples]
    codes = [window[side] for side in range(sides) for window in windows]
    return Batch(text.repeat(sides, 1, 1), mask.repeat(sides, 1), delay_labels(codes, delays, pad_id))


def padded_frames(examples: list[Example]) -> int:
    """Audio frames one forward pass over `examples` computes: each row padded to the longest window,
    a preference pair being two rows (see collate)."""
    return len(examples) * len(examples[0].codes) * max(e.frames for e in examples)


def pack_by_frames(examples: list[Example], budget: int) -> list[list[int]]:
    """Indices of `examples` in batches of at most `budget` padded frames (see padded_frames).

    Windows are sorted by length, ties by index, so the packing is a function of the lengths alone,
    and each batch takes the next window until one more would exceed the budget: windows of like
    length share a batch, so little of it is padding. A window longer than the budget gets a batch of
    its own (the trainer refuses such a budget before packing)."""
    batches: list[list[int]] = []
    for index in sorted(range(len(examples)), key=lambda i: (examples[i].frames, i)):
        # Sorted ascending, the window added is the batch's longest.
        if batches and padded_frames([examples[index]]) * (len(batches[-1]) + 1) <= budget:
            batches[-1].append(index)
        else:
            batches.append([index])
    return batches


def scoring_batches(examples: list[Example], batch_size: int, batch_frames: int | None) -> list[list[int]]:
    """Batches that score a whole set once, in any order (validation, DPO's reference): consecutive
    slices of `batch_size`, or packed by length within `batch_frames`."""
    if batch_frames is not None:
        return pack_by_frames(examples, batch_frames)
    return [list(range(start, min(start + batch_size, len(examples)))) for start in range(0, len(examples), batch_size)]


def token_logprobs(model: torch.nn.Module, batch: Batch, pad_id: int, start_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward `batch`; return the log-probability of every label, (B, K, positions) in float32
    whatever the autocast, and the mask of positions that hold a code."""
    batch_size, positions, codebooks = batch.labels.shape
    inputs = shift_tokens_right(batch.labels, pad_id, start_id)  # (B, K, positions)
    logits = model(
        encoder_outputs=(batch.text,),
        attention_mask=batch.text_mask,
        decoder_input_ids=inputs.reshape(batch_size * codebooks, positions),
        # Without it transformers builds a KV cache nobody reads, and each layer's branch on the
        # cache's per-layer state is a guard that recompiles the compiled decoder layer by layer.
        use_cache=False,
    ).logits
    logits = logits.reshape(batch_size, codebooks, positions, -1).float()
    labels = batch.labels.transpose(1, 2)  # (B, K, positions)
    valid = labels != pad_id
    nll = F.cross_entropy(logits.flatten(0, 2), labels.masked_fill(~valid, 0).flatten(), reduction="none")
    return -nll.view(labels.shape) * valid, valid


def supervised_loss(logprobs: torch.Tensor, valid: torch.Tensor, tokens: int | None = None) -> torch.Tensor:
    """Cross-entropy summed over exactly the positions that hold a code, divided by `tokens`: the
    coded positions of the whole optimizer step (so gradient accumulation weights micro-batches
    by their tokens, as one big batch would), by default this batch's."""
    return -logprobs.sum() / (valid.sum() if tokens is None else tokens)


@torch.no_grad()
def reference_logprobs(
    model: torch.nn.Module,
    examples: list[Example],
    batches: list[list[int]],
    delays: list[int],
    pad_id: int,
    start_id: int,
    autocast: AbstractContextManager = nullcontext(),
) -> torch.Tensor:
    """(examples, 2) summed log-probabilities of each pair's chosen and rejected window under the
    base model (the adapter disabled), scored in `batches` of indices into `examples`: DPO's
    reference, fixed for the whole run, so computed once."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums = torch.zeros(len(examples), 2)
    with model.disable_adapter(), autocast:
        for indices in batches:
            chunk = [examples[i] for i in indices]
            logprobs, _ = token_logprobs(model, collate(chunk, delays, pad_id).to(device), pad_id, start_id)
            sums[indices] = torch.stack(logprobs.sum((1, 2)).chunk(2), dim=1).cpu()
    model.train(was_training)
    return sums


DPO_REWARDS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies")


def dpo_loss(
    policy: torch.Tensor, reference: torch.Tensor, beta: float
) -> tuple[torch.Tensor, dict[str, float]]:
    """DPO on per-sequence log-probabilities laid out [chosen..., rejected...]; rewards as TRL reports
    them (beta times the policy/reference log-ratio)."""
    policy_chosen, policy_rejected = policy.chunk(2)
    reference_chosen, reference_rejected = reference.chunk(2)
    chosen = beta * (policy_chosen - reference_chosen)
    rejected = beta * (policy_rejected - reference_rejected)
    loss = -F.logsigmoid(chosen - rejected).mean()
    values = (chosen.mean(), rejected.mean(), (chosen - rejected).mean(), (chosen > rejected).float().mean())
    metrics = dict(zip(DPO_REWARDS, (value.item() for value in values)))
    return loss, metrics
