"""The key-value cache of ``llama.py``'s model: what a query may see (``attention_mask``), one
layer's preallocated keys and values (``LayerCache``, a ring of ``sliding_window`` slots when the
model has a window), and every layer's (``KVCache``).
Notes: ``phase_09_modern/notes/11_kv_cache.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from phase_09_modern.models.llama import LlamaConfig


def attention_mask(q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None
                   ) -> torch.Tensor:
    """(Tq, Tk) bool, True where a query may see a key: the key's slot is filled (position
    >= 0), not in the query's future, and with a window fewer than ``window`` positions back."""
    q, k = q_pos[:, None], k_pos[None, :]
    allowed = (k >= 0) & (k <= q)
    if window is not None:
        allowed &= q - k < window
    return allowed


class LayerCache:
    """One layer's keys and values, (B, n_kv_head, capacity, head_dim), allocated once.

    Without a window, the token at position p lives in slot p. With a window W the buffer is a
    ring of W slots (position p in slot p mod W): a new chunk attends to the ring and to itself,
    then its last W tokens overwrite the oldest ones. ``positions`` holds each slot's position
    (-1 while empty), from which ``attention_mask`` builds the mask."""

    def __init__(self, batch: int, n_kv_head: int, head_dim: int, capacity: int,
                 window: int | None, device: torch.device, dtype: torch.dtype) -> None:
        shape = (batch, n_kv_head, capacity, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.positions = torch.full((capacity,), -1, dtype=torch.int64, device=device)
        self.window = window

    def update(self, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor):
        """Store the chunk's k, v (B, n_kv_head, T, D) at positions ``q_pos`` (T,); returns
        the keys, values and key positions the chunk attends to."""
        if self.window is None:
            start, end = int(q_pos[0]), int(q_pos[-1]) + 1
            self.k[:, :, start:end] = k
            self.v[:, :, start:end] = v
            self.positions[start:end] = q_pos
            return self.k[:, :, :end], self.v[:, :, :end], self.positions[:end]
        keys = torch.cat([self.k, k], dim=2)
        values = torch.cat([self.v, v], dim=2)
        key_pos = torch.cat([self.positions, q_pos])
        keep = min(k.size(2), self.window)
        slots = q_pos[-keep:] % self.window
        self.k[:, :, slots] = k[:, :, -keep:]
        self.v[:, :, slots] = v[:, :, -keep:]
        self.positions[slots] = q_pos[-keep:]
        return keys, values, key_pos


class KVCache:
    """Every layer's ``LayerCache`` and ``length``, the number of tokens seen so far (the
    position of the next one). Capacity is ``max_len`` slots per layer, or ``sliding_window``
    when the model has one."""

    def __init__(self, config: LlamaConfig, batch: int, max_len: int,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        if not 1 <= max_len <= config.block_size:
            raise ValueError(f"a cache for {max_len} tokens: need 1 <= max_len <= block_size "
                             f"= {config.block_size}")
        ring = config.sliding_window is not None and config.sliding_window < max_len
        window = config.sliding_window if ring else None
        capacity = window if ring else max_len
        self.max_len = max_len
        self.length = 0
        self.layers = [LayerCache(batch, config.n_kv_head, config.head_dim, capacity, window,
                                  torch.device(device), dtype) for _ in range(config.n_layer)]

    def slots_in_use(self) -> int:
        return int((self.layers[0].positions >= 0).sum())

