"""The vanilla (Elman 1990) recurrent network: h_t = tanh(x_t W_x + h_{t-1} W_h + b).

One weight set is applied at every time step, so the gradient of a weight is the SUM of its
gradients over the steps, and the gradient reaching h_t is the sum of what came from the output at
t and what came back from h_{t+1}: backpropagation through time (BPTT).
Derivation: ``phase_02_sequence/notes/01_rnn_and_bptt.md``.

Layout (the same for every cell of this phase, and PyTorch's ``nn.RNN`` transposed):
x: (B, T, D) batch-first, w_x: (D, G*H), w_h: (H, G*H), one bias of (G*H,), with G = 1 here,
4 for the LSTM and 3 for the GRU. torch's ``weight_ih_l0`` is ``w_x.T`` and its two biases
``bias_ih_l0 + bias_hh_l0`` sum to ``b``.

The sequence forward projects the inputs of every step with ONE matmul, ``x @ w_x + b``; only the
recurrence loops over time. The sequence backward runs the cell backward in reverse time, keeps the
pre-activation gradients of every step, and then forms each weight gradient with one matmul over
all steps (sum_t x_t^T da_t is ``x.reshape(-1, D).T @ da.reshape(-1, G*H)``).
"""

from __future__ import annotations

import math

import numpy as np

from phase_01_nn.activations import tanh_backward, tanh_forward
from phase_01_nn.module import Module


def check_recurrent_args(op: str, x: np.ndarray, states: dict, w_x: np.ndarray, w_h: np.ndarray,
                         biases: dict, gates: int, *, sequence: bool) -> tuple[int, int, int]:
    """Check the shapes of a recurrent op's arguments; returns (B, D, H) or a clear error.

    ``states`` and ``biases`` map argument names to arrays (a state may be None: zeros).
    """
    want = "(B, T, D)" if sequence else "(B, D)"
    if x.ndim != (3 if sequence else 2):
        raise ValueError(f"{op}: x must be {want}, got shape {x.shape}")
    if sequence and x.shape[1] == 0:
        raise ValueError(f"{op}: x has shape {x.shape}, a sequence of length 0; "
                         f"a recurrent network needs at least one step")
    if w_h.ndim != 2 or w_h.shape[1] != gates * w_h.shape[0]:
        raise ValueError(f"{op}: w_h must be (H, {gates}*H), got shape {w_h.shape}")
    batch, width, hidden = x.shape[0], x.shape[-1], w_h.shape[0]
    if w_x.shape != (width, gates * hidden):
        raise ValueError(f"{op}: x has shape {x.shape}, so {width} input features, and w_h "
                         f"{w_h.shape} gives H = {hidden}: w_x must be "
                         f"({width}, {gates * hidden}), got {w_x.shape}")
    for name, bias in biases.items():
        if bias.shape != (gates * hidden,):
            raise ValueError(f"{op}: {name} has shape {bias.shape}; expected ({gates * hidden},)")
    for name, state in states.items():
        if state is not None and state.shape != (batch, hidden):
            raise ValueError(f"{op}: {name} has shape {state.shape}; expected (B, H) = "
                             f"({batch}, {hidden}) from x {x.shape} and w_h {w_h.shape}")
    return batch, width, hidden


def initial_state(state: np.ndarray | None, batch: int, hidden: int, dtype) -> np.ndarray:
    """The given state, or zeros (B, H) when it is None."""
    return np.zeros((batch, hidden), dtype=dtype) if state is None else state


def previous_states(h0: np.ndarray, hs: np.ndarray) -> np.ndarray:
    """(B, T, H): the state each step started from, h_{t-1}, i.e. [h0, h_1, ..., h_{T-1}]."""
    return np.concatenate([h0[:, None], hs[:, :-1]], axis=1)


def summed_over_steps(inputs: np.ndarray, da: np.ndarray) -> np.ndarray:
    """sum over b and t of inputs[b, t]^T da[b, t]: (B, T, K), (B, T, M) -> (K, M), as one
    matmul over the B*T rows. A weight used at every step gets this sum as its gradient."""
    return inputs.reshape(-1, inputs.shape[-1]).T @ da.reshape(-1, da.shape[-1])


def rnn_step_forward(x_t: np.ndarray, h_prev: np.ndarray, w_x: np.ndarray, w_h: np.ndarray,
                     b: np.ndarray):
    """x_t: (B, D), h_prev: (B, H), w_x: (D, H), w_h: (H, H), b: (H,) -> h: (B, H),
    h = tanh(x_t W_x + h_prev W_h + b)."""
    check_recurrent_args("rnn_step_forward", x_t, {"h_prev": h_prev}, w_x, w_h, {"b": b}, 1,
                         sequence=False)
    h, tanh_cache = tanh_forward(x_t @ w_x + h_prev @ w_h + b)
    return h, (x_t, h_prev, w_x, w_h, tanh_cache)


def rnn_step_backward(dh: np.ndarray, cache):
    """da = dh (1 - h^2); dx_t = da W_x^T; dh_prev = da W_h^T; dW_x = x_t^T da; dW_h =
    h_prev^T da; db = sum_b da."""
    x_t, h_prev, w_x, w_h, tanh_cache = cache
    (da,) = tanh_backward(dh, tanh_cache)
    return da @ w_x.T, da @ w_h.T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)


def rnn_forward(x: np.ndarray, h0: np.ndarray | None, w_x: np.ndarray, w_h: np.ndarray,
                b: np.ndarray):
    """x: (B, T, D), h0: (B, H) or None (zeros) -> (hs: (B, T, H), h_T: (B, H)).

    h_t = tanh(x_t W_x + h_{t-1} W_h + b) for t = 1..T; hs stacks every h_t.
    """
    batch, _, hidden = check_recurrent_args("rnn_forward", x, {"h0": h0}, w_x, w_h, {"b": b}, 1,
                                            sequence=True)
    start = initial_state(h0, batch, hidden, x.dtype)
    projected = x @ w_x + b
    hs = np.empty(projected.shape, dtype=projected.dtype)
    h = start
    for t in range(x.shape[1]):
        h = np.tanh(projected[:, t] + h @ w_h)
        hs[:, t] = h
    return (hs, h), (x, start, h0 is None, w_x, w_h, hs)


def rnn_backward(dout, cache):
    """dout = (dhs: (B, T, H), dh_T: (B, H)) -> (dx, dh0, dw_x, dw_h, db); dh0 is None when h0
    was. In reverse time: dh_t = dhs_t + (from step t+1); da_t = dh_t (1 - h_t^2);
    the gradient sent back to h_{t-1} is da_t W_h^T."""
    dhs, dh_last = dout
    x, start, no_h0, w_x, w_h, hs = cache
    das = np.empty_like(hs)
    dh = np.zeros_like(start) if dh_last is None else dh_last
    for t in reversed(range(hs.shape[1])):
        (da,) = tanh_backward(dh + dhs[:, t], hs[:, t])
        das[:, t] = da
        dh = da @ w_h.T
    dw_x, dw_h = summed_over_steps(x, das), summed_over_steps(previous_states(start, hs), das)
    return das @ w_x.T, None if no_h0 else dh, dw_x, dw_h, das.sum(axis=(0, 1))


def uniform_recurrent_init(rng: np.random.Generator, shape, hidden: int, dtype) -> np.ndarray:
    """U(-1/sqrt(H), 1/sqrt(H)): PyTorch's default for every weight and bias of its RNNs."""
    bound = 1.0 / math.sqrt(hidden)
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class RecurrentLayer(Module):
    """A recurrent layer over whole sequences, with its state made explicit.

    ``hs, state = layer.forward(x, state)`` and ``dx, dstate0 = layer.backward(dhs, dstate)``,
    where a state is a tuple of (B, H) arrays ((h,) here and for the GRU, (h, c) for the LSTM)
    and ``None`` means zeros (forward) or no gradient from beyond the sequence (backward).
    ``dstate0`` is the gradient of the initial state: None when it was None.
    """

    state_names: tuple[str, ...] = ("h",)
    gates = 1

    def __init__(self, input_size: int, hidden_size: int, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"{type(self).__name__} needs input_size and hidden_size >= 1, "
                             f"got {input_size} and {hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        width = self.gates * hidden_size
        self.add_param("w_x", uniform_recurrent_init(rng, (input_size, width), hidden_size, dtype))
        self.add_param("w_h", uniform_recurrent_init(rng, (hidden_size, width), hidden_size, dtype))
        self._cache = None

    def _states(self, state):
        if state is None:
            return (None,) * len(self.state_names)
        if len(state) != len(self.state_names):
            raise ValueError(f"{type(self).__name__} state is {self.state_names}, "
                             f"got a tuple of {len(state)} arrays")
        return tuple(state)

    def _accumulate(self, grads: dict) -> None:
        for name, grad in grads.items():
            self.grads[name] += grad


class RNN(RecurrentLayer):
    """A tanh RNN layer: params ``w_x`` (D, H), ``w_h`` (H, H), ``b`` (H,)."""

    def __init__(self, input_size: int, hidden_size: int, *, rng: np.random.Generator,
                 dtype=np.float32) -> None:
        super().__init__(input_size, hidden_size, rng=rng, dtype=dtype)
        self.add_param("b", uniform_recurrent_init(rng, (hidden_size,), hidden_size, dtype))

    def forward(self, x, state=None):
        (h0,) = self._states(state)
        (hs, h_last), self._cache = rnn_forward(x, h0, self.params["w_x"], self.params["w_h"],
                                                self.params["b"])
        return hs, (h_last,)

    def backward(self, dhs, dstate=None):
        (dh_last,) = self._states(dstate)
        dx, dh0, dw_x, dw_h, db = rnn_backward((dhs, dh_last), self._cache)
        self._accumulate({"w_x": dw_x, "w_h": dw_h, "b": db})
        return dx, None if dh0 is None else (dh0,)
