"""A torchrun rank module whose rank 1 raises while rank 0 waits for it in a collective."""

from __future__ import annotations

import os

import torch.distributed as dist

from tasks.training.launchers import ERRORS_DIR_ENV, recorded_failure

if __name__ == "__main__":
    dist.init_process_group("gloo")
    with recorded_failure(os.environ.get(ERRORS_DIR_ENV)):
        if dist.get_rank() == 1:
            raise ValueError("shard 7 is unreadable")
        dist.barrier()  # never returns: rank 1 is gone
