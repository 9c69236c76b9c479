"""Keep freed memory in the process: glibc's malloc settings for a training loop.

A NumPy training step allocates its activations, frees them in the backward, and allocates the
same sizes again in the next step. By default glibc hands large freed blocks back to the
operating system (``munmap``, or trimming the top of the heap) and the next step takes them back
one page fault per 4 KiB page, each page zeroed by the kernel. Measured on the
``shakespeare-char`` GPT, one thread: 67 ms a step with the defaults, 49 ms with the settings
below, the arithmetic unchanged (``phase_06_torch_parity/notes/03_speed.md``). The settings keep
up to ``keep_bytes`` of freed memory for reuse: the process's size stays at its peak between
steps instead of falling back, and the peak itself does not grow.

Only glibc (Linux) has ``mallopt``; elsewhere ``keep_freed_memory`` does nothing and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest on 64-bit systems


def keep_freed_memory(keep_bytes: int = 1 << 30) -> bool:
    """Ask glibc to serve blocks up to 32 MiB from its heap (not fresh ``mmap`` calls) and to
    return freed heap memory to the system only above ``keep_bytes``. True where it applied."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, min(keep_bytes, 2**31 - 1)))
