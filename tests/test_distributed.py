"""What the run does across processes, with two real gloo processes on this machine."""

from __future__ import annotations

import subprocess
import sys

from helpers import free_port

# Each process: a BatchNorm whose running statistics and step count differ by rank, then
# average_buffers; prints what it holds afterwards.
WORKER = """
import sys, torch, torch.distributed as dist
from aclstm.train.distributed import average_buffers
rank, port = int(sys.argv[1]), sys.argv[2]
dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
bn = torch.nn.BatchNorm2d(3)
bn.running_mean.fill_(1.0 + 2 * rank)   # 1 and 3
bn.running_var.fill_(2.0 + 4 * rank)    # 2 and 6
bn.num_batches_tracked.fill_(5 + rank)  # an integer count: not averaged
average_buffers(bn)
print(bn.running_mean.tolist(), bn.running_var.tolist(), int(bn.num_batches_tracked))
dist.destroy_process_group()
"""


def test_batch_norm_statistics_are_averaged_over_processes():
    """Guards the averaging of running statistics under torchrun: two processes holding
    means 1 and 3 (variances 2 and 6) both end with 2 (4); a sum (4, 8) or one process's own
    values fail. Integer buffers (the step count) are left alone."""
    port = str(free_port())
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(rank), port],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    for rank, (out, _) in enumerate(outputs):
        assert out.strip() == f"[2.0, 2.0, 2.0] [4.0, 4.0, 4.0] {5 + rank}"
