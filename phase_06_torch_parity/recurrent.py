"""Parity cases for phase 2's recurrent ops, against ``torch.nn.RNN``, ``nn.LSTM``, ``nn.GRU``
and their ``*Cell`` versions with the weights mapped across.

The mapping (documented in ``phase_02_sequence/notes`` and in chapter 2 of this phase): torch
stores ``weight_ih`` as (G*H, D) and ``weight_hh`` as (G*H, H), so ours are their transposes, in
the same gate order ((i, f, g, o) for the LSTM, (r, z, n) for the GRU). The LSTM's and the plain
RNN's single bias is torch's ``bias_ih + bias_hh`` (here ``bias_hh`` is zero); the GRU keeps
both, because its reset gate multiplies the hidden bias.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call

from phase_02_sequence.gru import (
    gru_backward,
    gru_cell_backward,
    gru_cell_forward,
    gru_forward,
    gru_step_backward,
    gru_step_forward,
)
from phase_02_sequence.lstm import (
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    lstm_step_backward,
    lstm_step_forward,
)
from phase_02_sequence.rnn import rnn_backward, rnn_forward, rnn_step_backward, rnn_step_forward
from phase_06_torch_parity.harness import ParityCase

GATES = {"rnn": 1, "lstm": 4, "gru": 3}

# tanh's derivative 1 - t^2 is computed from a rounded t. Near saturation one ulp of t is a large
# share of 1 - t, and NumPy's float32 tanh is within 1 ulp where torch's is within 0.5
# (measured over x in [3, 9]: 0.99 and 0.51 ulp). With one hidden unit a single saturated value
# carries the whole gradient, so ours can be more than ten times torch's error (seen: 8.5e-4
# against 7.0e-5 for the bias of a one-unit RNN over 3 steps).
TANH_FLOAT32_TOL = 2e-3
TANH_FLOAT32_REASON = "1 - tanh^2 from a rounded float32 tanh near saturation"


def _sizes(rng):
    return tuple(int(v) for v in (rng.integers(1, 4), rng.integers(1, 7), rng.integers(1, 5),
                                  rng.integers(1, 5)))  # B, T, D, H


def _weights(rng, kind, d, h):
    g = GATES[kind]
    scale = 1.0 / np.sqrt(h)
    return (scale * rng.standard_normal((d, g * h)), scale * rng.standard_normal((h, g * h)))


def _state(rng, b, h):
    return 0.5 * rng.standard_normal((b, h)) if rng.random() < 0.7 else None


def _torch_params(w_x, w_h, b_ih, b_hh, suffix):
    return {f"weight_ih{suffix}": w_x.T, f"weight_hh{suffix}": w_h.T,
            f"bias_ih{suffix}": b_ih, f"bias_hh{suffix}": b_hh}


def _module(kind, cell, d, h, dtype):
    if cell:
        cls = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind]
        return cls(d, h, dtype=dtype)
    cls = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    return cls(d, h, batch_first=True, dtype=dtype)


# --- the plain RNN -------------------------------------------------------------------------

def _rnn_step_inputs(rng):
    b, _, d, h = _sizes(rng)
    w_x, w_h = _weights(rng, "rnn", d, h)
    return (rng.standard_normal((b, d)), 0.5 * rng.standard_normal((b, h)), w_x, w_h,
            0.1 * rng.standard_normal(h)), {}


def _rnn_step_reference(x_t, h_prev, w_x, w_h, b):
    cell = _module("rnn", True, w_x.shape[0], w_h.shape[0], x_t.dtype)
    return functional_call(cell, _torch_params(w_x, w_h, b, torch.zeros_like(b), ""),
                           (x_t, h_prev))


def _rnn_inputs(rng):
    b, t, d, h = _sizes(rng)
    w_x, w_h = _weights(rng, "rnn", d, h)
    return (rng.standard_normal((b, t, d)), _state(rng, b, h), w_x, w_h,
            0.1 * rng.standard_normal(h)), {}


def _rnn_reference(x, h0, w_x, w_h, b):
    rnn = _module("rnn", False, w_x.shape[0], w_h.shape[0], x.dtype)
    hx = None if h0 is None else h0[None]
    hs, h_last = functional_call(rnn, _torch_params(w_x, w_h, b, torch.zeros_like(b), "_l0"),
                                 (x, hx))
    return hs, h_last[0]


# --- the LSTM --------------------------------------------------------------------------------

def _lstm_cell_inputs(rng):
    b, h = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    return (rng.standard_normal((b, 4 * h)), rng.standard_normal((b, h))), {}


def _lstm_cell_reference(a, c_prev):
    i, f, g, o = a.chunk(4, dim=1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _lstm_step_inputs(rng):
    b, _, d, h = _sizes(rng)
    w_x, w_h = _weights(rng, "lstm", d, h)
    return (rng.standard_normal((b, d)), 0.5 * rng.standard_normal((b, h)),
            0.5 * rng.standard_normal((b, h)), w_x, w_h, 0.1 * rng.standard_normal(4 * h)), {}


def _lstm_step_reference(x_t, h_prev, c_prev, w_x, w_h, b):
    cell = _module("lstm", True, w_x.shape[0], w_h.shape[0], x_t.dtype)
    return functional_call(cell, _torch_params(w_x, w_h, b, torch.zeros_like(b), ""),
                           (x_t, (h_prev, c_prev)))


def _lstm_inputs(rng):
    b, t, d, h = _sizes(rng)
    w_x, w_h = _weights(rng, "lstm", d, h)
    h0 = _state(rng, b, h)
    c0 = None if h0 is None else 0.5 * rng.standard_normal((b, h))
    return (rng.standard_normal((b, t, d)), h0, c0, w_x, w_h, 0.1 * rng.standard_normal(4 * h)), {}


def _lstm_reference(x, h0, c0, w_x, w_h, b):
    lstm = _module("lstm", False, w_x.shape[0], w_h.shape[0], x.dtype)
    hx = None if h0 is None else (h0[None], c0[None])
    hs, (h_last, c_last) = functional_call(
        lstm, _torch_params(w_x, w_h, b, torch.zeros_like(b), "_l0"), (x, hx))
    return hs, h_last[0], c_last[0]


# --- the GRU ---------------------------------------------------------------------------------

def _gru_cell_inputs(rng):
    b, h = int(rng.integers(1, 4)), int(rng.integers(1, 5))
    return (rng.standard_normal((b, 3 * h)), rng.standard_normal((b, 3 * h)),
            rng.standard_normal((b, h))), {}


def _gru_cell_reference(ax, ah, h_prev):
    xr, xz, xn = ax.chunk(3, dim=1)
    hr, hz, hn = ah.chunk(3, dim=1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h_prev


def _gru_step_inputs(rng):
    b, _, d, h = _sizes(rng)
    w_x, w_h = _weights(rng, "gru", d, h)
    return (rng.standard_normal((b, d)), 0.5 * rng.standard_normal((b, h)), w_x, w_h,
            0.1 * rng.standard_normal(3 * h), 0.1 * rng.standard_normal(3 * h)), {}


def _gru_step_reference(x_t, h_prev, w_x, w_h, b_x, b_h):
    cell = _module("gru", True, w_x.shape[0], w_h.shape[0], x_t.dtype)
    return functional_call(cell, _torch_params(w_x, w_h, b_x, b_h, ""), (x_t, h_prev))


def _gru_inputs(rng):
    b, t, d, h = _sizes(rng)
    w_x, w_h = _weights(rng, "gru", d, h)
    return (rng.standard_normal((b, t, d)), _state(rng, b, h), w_x, w_h,
            0.1 * rng.standard_normal(3 * h), 0.1 * rng.standard_normal(3 * h)), {}


def _gru_reference(x, h0, w_x, w_h, b_x, b_h):
    gru = _module("gru", False, w_x.shape[0], w_h.shape[0], x.dtype)
    hx = None if h0 is None else h0[None]
    hs, h_last = functional_call(gru, _torch_params(w_x, w_h, b_x, b_h, "_l0"), (x, hx))
    return hs, h_last[0]


RECURRENT_CASES: list[ParityCase] = [
    ParityCase("rnn step (nn.RNNCell)", rnn_step_forward, rnn_step_backward, _rnn_step_reference,
               _rnn_step_inputs, arg_names=("x_t", "h_prev", "w_x", "w_h", "b"),
               tol_float32=TANH_FLOAT32_TOL, reason=TANH_FLOAT32_REASON),
    ParityCase("rnn sequence (nn.RNN)", rnn_forward, rnn_backward, _rnn_reference, _rnn_inputs,
               arg_names=("x", "h0", "w_x", "w_h", "b"),
               tol_float32=TANH_FLOAT32_TOL, reason=TANH_FLOAT32_REASON),
    ParityCase("lstm cell (gate math)", lstm_cell_forward, lstm_cell_backward,
               _lstm_cell_reference, _lstm_cell_inputs, arg_names=("a", "c_prev")),
    ParityCase("lstm step (nn.LSTMCell)", lstm_step_forward, lstm_step_backward,
               _lstm_step_reference, _lstm_step_inputs,
               arg_names=("x_t", "h_prev", "c_prev", "w_x", "w_h", "b")),
    ParityCase("lstm sequence (nn.LSTM)", lstm_forward, lstm_backward, _lstm_reference,
               _lstm_inputs, arg_names=("x", "h0", "c0", "w_x", "w_h", "b")),
    ParityCase("gru cell (gate math)", gru_cell_forward, gru_cell_backward, _gru_cell_reference,
               _gru_cell_inputs, arg_names=("ax", "ah", "h_prev")),
    ParityCase("gru step (nn.GRUCell)", gru_step_forward, gru_step_backward,
               _gru_step_reference, _gru_step_inputs,
               arg_names=("x_t", "h_prev", "w_x", "w_h", "b_x", "b_h")),
    ParityCase("gru sequence (nn.GRU)", gru_forward, gru_backward, _gru_reference, _gru_inputs,
               arg_names=("x", "h0", "w_x", "w_h", "b_x", "b_h")),
]
