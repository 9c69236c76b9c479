import platform
import subprocess
import sys

import pytest

PROBE = """
import sys
import numpy as np
from phase_01_nn.allocator import keep_freed_memory

def rss_mib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

applied = keep_freed_memory() if sys.argv[1] == "keep" else None
block = np.ones(4 << 20, dtype=np.float32)  # 16 MiB, touched
held = rss_mib()
del block
print(applied, held - rss_mib())
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_freed_memory_stays_with_the_process_only_when_asked():
    """By default glibc returns a freed 16 MiB block to the system at once (the next step would
    fault it back in page by page); after ``keep_freed_memory`` it keeps it."""
    def run(mode: str) -> tuple[str, float]:
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True,
                             text=True, check=True).stdout.split()
        return out[0], float(out[1])

    applied, returned = run("keep")
    assert applied == "True"
    assert returned < 1.0  # MiB given back
    _, returned_by_default = run("default")
    assert returned_by_default > 15.0
