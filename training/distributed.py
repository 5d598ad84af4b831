"""Training on several processes (`accelerate launch --multi_gpu`, torchrun): which rank this is, and what the
ranks must agree on.

Every rank runs the same training code; the launcher gives each its RANK and WORLD_SIZE. The Trainer splits each
batch across the ranks and averages their gradients; evaluation and prediction gather every rank's rows, so each
rank ends with the same model and the same figures. Only rank 0 writes (the run folder, the job status); the
others return once their work is done.

Two things the libraries do not do for us:
- on a machine without CUDA, the Trainer runs each rank as a separate single-process training unless told to use
  the CPU (`cpu_ranks()` -> TrainingArguments(use_cpu=True), which picks the gloo backend);
- the run id is rank 0's (`agree`): ids carry the time, and rank 0's temporary folder takes the id it names.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

from studio.errors import ConfigError
from training.runs import RunInfo

T = TypeVar("T")

#: The variables a launcher sets for a rank's share of the world (torchrun, accelerate, MPI).
_WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def rank() -> int:
    """This process's rank, 0 when not launched on several processes."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many processes train together (1 when not launched by a distributed launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 writes the run folder and the job status; the other ranks only train."""
    return rank() == 0


def cpu_ranks() -> bool:
    """True when several ranks train without CUDA: TrainingArguments(use_cpu=True) then joins them over gloo
    (without it, each rank would train its own model on all the data)."""
    if world_size() <= 1:
        return False
    import torch

    return not torch.cuda.is_available()


def check_launch() -> None:
    """Refuse `accelerate launch --cpu --num_processes N` (N > 1): accelerate starts one process for it (several
    only through MPI), so the N the user asked for would silently be 1. Raises ConfigError naming the command."""
    simple_cpu_launch = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    asked_for_several = "MASTER_ADDR" in os.environ  # accelerate's simple launcher sets it for num_processes > 1
    if simple_cpu_launch and asked_for_several and not any(v in os.environ for v in _WORLD_SIZE_VARS):
        raise ConfigError("`accelerate launch --cpu --num_processes N` starts a single process (accelerate runs "
                          "several CPU processes only through MPI), so this would train on one process.",
                          hint="on a machine without a GPU, launch with `--multi_gpu --num_processes N` instead of "
                               "`--cpu`: each rank then trains on the CPU and the ranks talk over gloo")


def agree(value: T) -> T:
    """Rank 0's `value` on every rank (a broadcast); `value` itself when training on one process.

    Starts the process group the way the Trainer will (accelerate's PartialState: gloo on CPU, nccl on CUDA), so
    it can be called before any TrainingArguments exist; the Trainer then reuses that group."""
    if world_size() <= 1:
        return value
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    PartialState(cpu=cpu_ranks())
    box: list[Any] = [value]
    broadcast_object_list(box, from_process=0)
    return box[0]


def replica_info(run_id: str, metrics: dict[str, Any]) -> RunInfo:
    """What run_training returns on a rank other than 0: no folder (rank 0 writes it), and in `metrics` this rank,
    the world size and the optimisation steps it took (the same on every rank)."""
    return RunInfo(id=run_id, created="", status="succeeded",
                   metrics={"rank": rank(), "world_size": world_size(), "global_step": metrics.get("global_step")})


def finish() -> None:
    """Wait for every rank, then close the process group (torch warns at exit about one left open)."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
