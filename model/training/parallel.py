"""Data-parallel training across the processes `torchrun` starts (one per GPU, or several on a CPU).

Every process holds the whole model and all examples and walks the same example order; each
micro-batch is dealt out across the processes, and the LoRA gradients are summed across them once
per optimizer step, with one all_reduce. Losses are divided by the whole step's tokens (or pairs)
before that sum, so a run on N processes computes what one process computes with the same
`batch_size` (or `batch_frames`: the budget of the whole micro-batch, which the processes share),
also when a micro-batch does not divide evenly (the last one of an epoch, or a packed one). The LoRA
gradients are small (10 M values at musicgen-small's shape), so summing them once per step, rather
than overlapping the sum with the backward as DistributedDataParallel does, costs little and lets a
process whose share of a micro-batch is empty simply skip it.

Process 0 alone writes progress lines, checkpoints and the adapter.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Processes:
    rank: int  # this process, 0 .. world - 1
    world: int  # how many processes train together (1: not distributed)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, indices: list[int]) -> list[int]:
        """This process's share of a micro-batch."""
        return indices[self.rank :: self.world]

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """`tensor` summed over all processes (in place)."""
        if self.world > 1:
            dist.all_reduce(tensor)
        return tensor

    def any(self, flag: bool, device: torch.device) -> bool:
        """Whether `flag` is set in any process: so all of them stop at the same step."""
        return bool(self.sum(torch.tensor([float(flag)], device=device)).item())

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def start_processes(device: torch.device) -> tuple[Processes, torch.device]:
    """Join the process group torchrun describes in the environment (gloo on CPU, nccl on CUDA) and
    return it with this process's device; a process not started by torchrun is a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Processes(rank=0, world=1), device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", device_id=device if device.type == "cuda" else None)
    return Processes(rank=dist.get_rank(), world=dist.get_world_size()), device


def sum_gradients(parameters: list[torch.nn.Parameter], processes: Processes) -> None:
    """Sum the gradients of `parameters` over all processes, as one flat all_reduce."""
    if processes.world == 1:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = processes.sum(torch.cat([g.flatten() for g in grads]))
    for parameter, summed in zip(parameters, flat.split([p.numel() for p in parameters])):
        parameter.grad = summed.view_as(parameter)


def stop_processes() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
