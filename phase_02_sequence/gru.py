"""The gated recurrent unit (Cho et al. 2014), in PyTorch's formulation:

    ax = x_t W_x + b_x      ah = h_{t-1} W_h + b_h        (B, 3H) each, gates in the order (r, z, n)
    r = sigmoid(ax_r + ah_r)       z = sigmoid(ax_z + ah_z)
    n = tanh(ax_n + r * ah_n)      the reset gate scales the hidden part INCLUDING its bias
    h_t = (1 - z) * n + z * h_{t-1}

Because r multiplies ``h W_hn + b_hn`` and not ``b_xn``, the two biases cannot be merged as in the
LSTM: ``b_x`` is torch's ``bias_ih_l0`` and ``b_h`` its ``bias_hh_l0``. ``w_x`` (D, 3H) is
``weight_ih_l0.T`` and ``w_h`` (H, 3H) is ``weight_hh_l0.T``, both in torch's order (r, z, n).
(Cho et al. wrote h_t = z h_{t-1} + (1 - z) n with r applied before the matmul, r * h_{t-1};
torch and cuDNN apply it after, as here.)
Derivation: ``phase_02_sequence/notes/04_gru.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.activations import sigmoid
from phase_02_sequence.rnn import (
    RecurrentLayer,
    check_recurrent_args,
    initial_state,
    previous_states,
    summed_over_steps,
    uniform_recurrent_init,
)


def gru_cell_forward(ax: np.ndarray, ah: np.ndarray, h_prev: np.ndarray):
    """ax, ah: (B, 3H) input and hidden pre-activations (r, z, n), h_prev: (B, H) -> h (B, H)."""
    hidden = h_prev.shape[-1]
    expected = (h_prev.shape[0], 3 * hidden)
    if ax.shape != expected or ah.shape != expected:
        raise ValueError(f"gru_cell_forward: ax {ax.shape} and ah {ah.shape} must both be "
                         f"{expected} for h_prev {h_prev.shape}")
    r, z = np.split(sigmoid(ax[:, :2 * hidden] + ah[:, :2 * hidden]), 2, axis=1)
    ah_n = ah[:, 2 * hidden:]
    n = np.tanh(ax[:, 2 * hidden:] + r * ah_n)
    return n + z * (h_prev - n), (r, z, n, ah_n, h_prev)


def gru_cell_backward(dh: np.ndarray, cache):
    """dh -> (dax, dah, dh_prev through the z path only). With dn_a = dh (1-z) (1-n^2):
    dax = [da_r, da_z, dn_a], dah = [da_r, da_z, dn_a r], da_r = dn_a ah_n r(1-r),
    da_z = dh (h_prev - n) z(1-z), and dh_prev = dh z."""
    r, z, n, ah_n, h_prev = cache
    dn_a = dh * (1.0 - z) * (1.0 - n * n)
    da_r = dn_a * ah_n * r * (1.0 - r)
    da_z = dh * (h_prev - n) * z * (1.0 - z)
    dax = np.concatenate([da_r, da_z, dn_a], axis=1)
    dah = np.concatenate([da_r, da_z, dn_a * r], axis=1)
    return dax, dah, dh * z


def _check_gru(op, x, h, w_x, w_h, b_x, b_h, *, sequence):
    return check_recurrent_args(op, x, {"h0" if sequence else "h_prev": h}, w_x, w_h,
                                {"b_x": b_x, "b_h": b_h}, 3, sequence=sequence)


def gru_step_forward(x_t, h_prev, w_x, w_h, b_x, b_h):
    """x_t: (B, D), h_prev: (B, H), w_x: (D, 3H), w_h: (H, 3H), b_x, b_h: (3H,) -> h: (B, H)."""
    _check_gru("gru_step_forward", x_t, h_prev, w_x, w_h, b_x, b_h, sequence=False)
    h, cell_cache = gru_cell_forward(x_t @ w_x + b_x, h_prev @ w_h + b_h, h_prev)
    return h, (x_t, h_prev, w_x, w_h, cell_cache)


def gru_step_backward(dh, cache):
    """dh -> (dx_t, dh_prev, dw_x, dw_h, db_x, db_h); h_prev gets the z path plus dah W_h^T."""
    x_t, h_prev, w_x, w_h, cell_cache = cache
    dax, dah, dh_prev = gru_cell_backward(dh, cell_cache)
    return (dax @ w_x.T, dh_prev + dah @ w_h.T, x_t.T @ dax, h_prev.T @ dah,
            dax.sum(axis=0), dah.sum(axis=0))


def gru_forward(x, h0, w_x, w_h, b_x, b_h):
    """x: (B, T, D), h0: (B, H) or None (zeros) -> (hs: (B, T, H), h_T: (B, H))."""
    batch, _, hidden = _check_gru("gru_forward", x, h0, w_x, w_h, b_x, b_h, sequence=True)
    start = initial_state(h0, batch, hidden, x.dtype)
    projected = x @ w_x + b_x
    hs = np.empty((*projected.shape[:2], hidden), dtype=projected.dtype)
    h, cell_caches = start, []
    for t in range(x.shape[1]):
        h, cell_cache = gru_cell_forward(projected[:, t], h @ w_h + b_h, h)
        hs[:, t] = h
        cell_caches.append(cell_cache)
    return (hs, h), (x, start, h0 is None, w_x, w_h, hs, cell_caches)


def gru_backward(dout, cache):
    """dout = (dhs, dh_T) -> (dx, dh0, dw_x, dw_h, db_x, db_h); dh0 is None when h0 was."""
    dhs, dh_last = dout
    x, start, no_h0, w_x, w_h, hs, cell_caches = cache
    dh = np.zeros_like(start) if dh_last is None else dh_last
    daxs = np.empty((*hs.shape[:2], w_h.shape[1]), dtype=hs.dtype)
    dahs = np.empty_like(daxs)
    for t in reversed(range(hs.shape[1])):
        dax, dah, dh_direct = gru_cell_backward(dh + dhs[:, t], cell_caches[t])
        daxs[:, t], dahs[:, t] = dax, dah
        dh = dh_direct + dah @ w_h.T
    return (daxs @ w_x.T, None if no_h0 else dh, summed_over_steps(x, daxs),
            summed_over_steps(previous_states(start, hs), dahs),
            daxs.sum(axis=(0, 1)), dahs.sum(axis=(0, 1)))


class GRU(RecurrentLayer):
    """A GRU layer: ``w_x`` (D, 3H), ``w_h`` (H, 3H), ``b_x``, ``b_h`` (3H,), gates (r, z, n)."""

    gates = 3

    def __init__(self, input_size: int, hidden_size: int, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        super().__init__(input_size, hidden_size, rng=rng, dtype=dtype)
        for name in ("b_x", "b_h"):
            self.add_param(name, uniform_recurrent_init(rng, (3 * hidden_size,), hidden_size,
                                                        dtype))

    def forward(self, x, state=None):
        (h0,) = self._states(state)
        p = self.params
        (hs, h_last), self._cache = gru_forward(x, h0, p["w_x"], p["w_h"], p["b_x"], p["b_h"])
        return hs, (h_last,)

    def backward(self, dhs, dstate=None):
        (dh_last,) = self._states(dstate)
        dx, dh0, dw_x, dw_h, db_x, db_h = gru_backward((dhs, dh_last), self._cache)
        self._accumulate({"w_x": dw_x, "w_h": dw_h, "b_x": db_x, "b_h": db_h})
        return dx, None if dh0 is None else (dh0,)
