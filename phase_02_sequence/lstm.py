"""Long short-term memory (Hochreiter and Schmidhuber 1997) with the forget gate of Gers,
Schmidhuber and Cummins (2000), in PyTorch's formulation:

    a = x_t W_x + h_{t-1} W_h + b                       (B, 4H), gates in the order (i, f, g, o)
    i = sigmoid(a_i)   f = sigmoid(a_f)   g = tanh(a_g)   o = sigmoid(a_o)
    c_t = f * c_{t-1} + i * g                           the cell: an additive memory
    h_t = o * tanh(c_t)

Layout for phase 6: ``w_x`` (D, 4H) is ``weight_ih_l0.T`` of ``torch.nn.LSTM``, ``w_h`` (H, 4H) is
``weight_hh_l0.T``, both with torch's gate order (i, f, g, o) along the 4H axis, and the single
bias ``b`` is ``bias_ih_l0 + bias_hh_l0``.
Derivation of every gate's gradient: ``phase_02_sequence/notes/03_lstm.md``.
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


def lstm_cell_forward(a: np.ndarray, c_prev: np.ndarray):
    """a: (B, 4H) pre-activations in the order (i, f, g, o), c_prev: (B, H) -> (h, c), each
    (B, H): c = f c_prev + i g, h = o tanh(c)."""
    hidden = c_prev.shape[-1]
    if a.shape != (c_prev.shape[0], 4 * hidden):
        raise ValueError(f"lstm_cell_forward: a has shape {a.shape}; expected "
                         f"{(c_prev.shape[0], 4 * hidden)} for c_prev {c_prev.shape}")
    gates = sigmoid(a)
    gates[:, 2 * hidden:3 * hidden] = np.tanh(a[:, 2 * hidden:3 * hidden])
    i, f, g, o = np.split(gates, 4, axis=1)
    c = f * c_prev + i * g
    tanh_c = np.tanh(c)
    return (o * tanh_c, c), (gates, c_prev, tanh_c)


def lstm_cell_backward(dout, cache):
    """dout = (dh, dc) -> (da, dc_prev). With dc <- dc + dh o (1 - tanh^2 c):
    da_i = dc g i(1-i), da_f = dc c_prev f(1-f), da_g = dc i (1-g^2), da_o = dh tanh(c) o(1-o),
    dc_prev = dc f."""
    dh, dc = dout
    gates, c_prev, tanh_c = cache
    i, f, g, o = np.split(gates, 4, axis=1)
    dc = dc + dh * o * (1.0 - tanh_c * tanh_c)
    da = np.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                         dc * i * (1.0 - g * g), dh * tanh_c * o * (1.0 - o)], axis=1)
    return da, dc * f


def _check_lstm(op, x, h, c, w_x, w_h, b, *, sequence):
    names = ("h0", "c0") if sequence else ("h_prev", "c_prev")
    return check_recurrent_args(op, x, dict(zip(names, (h, c), strict=True)), w_x, w_h, {"b": b}, 4,
                                sequence=sequence)


def lstm_step_forward(x_t, h_prev, c_prev, w_x, w_h, b):
    """x_t: (B, D), h_prev, c_prev: (B, H), w_x: (D, 4H), w_h: (H, 4H), b: (4H,) -> (h, c)."""
    _check_lstm("lstm_step_forward", x_t, h_prev, c_prev, w_x, w_h, b, sequence=False)
    (h, c), cell_cache = lstm_cell_forward(x_t @ w_x + h_prev @ w_h + b, c_prev)
    return (h, c), (x_t, h_prev, w_x, w_h, cell_cache)


def lstm_step_backward(dout, cache):
    """dout = (dh, dc) -> (dx_t, dh_prev, dc_prev, dw_x, dw_h, db), through the cell's da."""
    x_t, h_prev, w_x, w_h, cell_cache = cache
    da, dc_prev = lstm_cell_backward(dout, cell_cache)
    return da @ w_x.T, da @ w_h.T, dc_prev, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)


def lstm_forward(x, h0, c0, w_x, w_h, b):
    """x: (B, T, D), h0, c0: (B, H) or None (zeros) -> (hs: (B, T, H), h_T, c_T)."""
    batch, _, hidden = _check_lstm("lstm_forward", x, h0, c0, w_x, w_h, b, sequence=True)
    start = initial_state(h0, batch, hidden, x.dtype)
    h, c = start, initial_state(c0, batch, hidden, x.dtype)
    projected = x @ w_x + b
    hs = np.empty((*projected.shape[:2], hidden), dtype=projected.dtype)
    cell_caches = []
    for t in range(x.shape[1]):
        (h, c), cell_cache = lstm_cell_forward(projected[:, t] + h @ w_h, c)
        hs[:, t] = h
        cell_caches.append(cell_cache)
    return (hs, h, c), (x, start, (h0 is None, c0 is None), w_x, w_h, hs, cell_caches)


def lstm_backward(dout, cache):
    """dout = (dhs, dh_T, dc_T) -> (dx, dh0, dc0, dw_x, dw_h, db), None for an absent h0 or c0.
    In reverse time the cell backward gets dh_t = dhs_t + da_{t+1} W_h^T and the dc_prev of
    step t+1; the weight gradients are summed over steps afterwards."""
    dhs, dh_last, dc_last = dout
    x, start, (no_h0, no_c0), w_x, w_h, hs, cell_caches = cache
    dh = np.zeros_like(start) if dh_last is None else dh_last
    dc = np.zeros_like(start) if dc_last is None else dc_last
    das = np.empty((*hs.shape[:2], w_h.shape[1]), dtype=hs.dtype)
    for t in reversed(range(hs.shape[1])):
        da, dc = lstm_cell_backward((dh + dhs[:, t], dc), cell_caches[t])
        das[:, t] = da
        dh = da @ w_h.T
    dw_x, dw_h = summed_over_steps(x, das), summed_over_steps(previous_states(start, hs), das)
    return (das @ w_x.T, None if no_h0 else dh, None if no_c0 else dc, dw_x, dw_h,
            das.sum(axis=(0, 1)))


class LSTM(RecurrentLayer):
    """An LSTM layer: ``w_x`` (D, 4H), ``w_h`` (H, 4H), ``b`` (4H,), gates (i, f, g, o).

    ``forget_bias`` is added to the forget gate's slice of ``b`` at initialisation, so a new
    LSTM starts by remembering (f = sigmoid(1) ~ 0.73; Gers et al. 2000, Jozefowicz et al. 2015).
    """

    state_names = ("h", "c")
    gates = 4

    def __init__(self, input_size: int, hidden_size: int, *, rng: np.random.Generator,
                 forget_bias: float = 1.0, dtype=np.float32) -> None:
        super().__init__(input_size, hidden_size, rng=rng, dtype=dtype)
        b = uniform_recurrent_init(rng, (4 * hidden_size,), hidden_size, dtype)
        b[hidden_size:2 * hidden_size] += forget_bias
        self.add_param("b", b)

    def forward(self, x, state=None):
        h0, c0 = self._states(state)
        (hs, h_last, c_last), self._cache = lstm_forward(
            x, h0, c0, self.params["w_x"], self.params["w_h"], self.params["b"])
        return hs, (h_last, c_last)

    def backward(self, dhs, dstate=None):
        dh_last, dc_last = self._states(dstate)
        dx, dh0, dc0, dw_x, dw_h, db = lstm_backward((dhs, dh_last, dc_last), self._cache)
        self._accumulate({"w_x": dw_x, "w_h": dw_h, "b": db})
        return dx, None if dh0 is None else (dh0, dc0)
