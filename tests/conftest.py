import os
import sys
from pathlib import Path

# Lets the tests import the plain reference implementation in tests/reference.py.
sys.path.insert(0, str(Path(__file__).parent))

# Under pytest-xdist each worker gets one core: two workers with two threads each on a
# 2-core machine would contend. Subprocesses the tests start inherit the setting.
if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
