"""Stacked recurrent layers, and truncated BPTT over parallel streams of text.

Stacking: layer k reads the hidden sequence of layer k - 1 (layer 0 reads the input), each with
its own state; the backward runs the layers top-down, each returning the gradient of the
sequence it read. This is ``torch.nn.LSTM(num_layers=L)`` without dropout between layers.

Truncated BPTT (Williams and Peng 1990; Sutskever 2013): a corpus of a million characters is
one very long sequence. Backpropagating through all of it is impossible, and cutting it into
independent windows throws away the context at every cut. Instead the text is read as B parallel
contiguous streams, ``seq_len`` characters at a time; the final state of one window is the
initial state of the next window of the same stream (the FORWARD sees the whole past), while the
gradient of that initial state is dropped (the BACKWARD stops at the window's start).
Notes: ``phase_02_sequence/notes/05_char_lm_and_tbptt.md``.
"""

from __future__ import annotations

import numpy as np

from phase_01_nn.module import Module
from phase_02_sequence.gru import GRU
from phase_02_sequence.lstm import LSTM
from phase_02_sequence.rnn import RNN

CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


def recurrent_layer(cell: str, input_size: int, hidden_size: int, *, rng: np.random.Generator,
                    dtype=np.float32):
    """A new RNN, LSTM or GRU layer by name."""
    try:
        layer_class = CELLS[cell]
    except KeyError:
        raise ValueError(f"unknown cell {cell!r}; choose one of {sorted(CELLS)}") from None
    return layer_class(input_size, hidden_size, rng=rng, dtype=dtype)


class StackedRecurrent(Module):
    """``n_layer`` recurrent layers of one cell type. The state is a tuple with one entry per
    layer, each that layer's state tuple; ``None`` means zeros everywhere."""

    def __init__(self, cell: str, input_size: int, hidden_size: int, n_layer: int = 1, *,
                 rng: np.random.Generator, dtype=np.float32) -> None:
        super().__init__()
        if n_layer < 1:
            raise ValueError(f"n_layer must be >= 1, got {n_layer}")
        for index in range(n_layer):
            width = input_size if index == 0 else hidden_size
            self.add_module(str(index), recurrent_layer(cell, width, hidden_size, rng=rng,
                                                        dtype=dtype))
        self.n_layer = n_layer

    def _per_layer(self, state, what: str):
        if state is None:
            return (None,) * self.n_layer
        if len(state) != self.n_layer:
            raise ValueError(f"{what} has {len(state)} layer entries for {self.n_layer} layers")
        return tuple(state)

    def forward(self, x, state=None):
        """x: (B, T, D) -> (hs of the top layer (B, T, H), final state of every layer)."""
        finals = []
        for layer, layer_state in zip(self.modules.values(), self._per_layer(state, "state"),
                                      strict=True):
            x, final = layer.forward(x, layer_state)
            finals.append(final)
        return x, tuple(finals)

    def backward(self, dhs, dstate=None):
        """dhs: (B, T, H) of the top layer, dstate: gradient of the final states or None ->
        (dx, gradient of the initial states, None where a layer's initial state was None)."""
        dstate0 = []
        layers = list(self.modules.values())
        for layer, layer_dstate in zip(reversed(layers),
                                       reversed(self._per_layer(dstate, "dstate")), strict=True):
            dhs, layer_dstate0 = layer.backward(dhs, layer_dstate)
            dstate0.append(layer_dstate0)
        dstate0.reverse()
        return dhs, None if all(d is None for d in dstate0) else tuple(dstate0)


class StreamBatches:
    """Token ids read as ``batch_size`` contiguous streams, one window of ``seq_len`` at a time.

    Stream b is ``data[b n : (b + 1) n]`` with n = (len(data) - 1) // batch_size, and its targets
    are the same characters shifted by one. ``next_batch`` returns (x, y, fresh): x and y are
    (batch_size, seq_len) int arrays, ``fresh`` a (batch_size,) bool array marking the streams
    whose carried state must be reset to zeros before this window: all of them at the start of
    every pass over the data, and, with ``reset_every = R > 0``, stream b also whenever
    ``(window + b) % R == 0``. Those staggered resets let a language model see the zero state
    (where sampling from a short prompt starts) in 1/R of its windows instead of once per pass.
    ``position`` (the index of the next window) is all a checkpoint needs to resume.
    """

    def __init__(self, data: np.ndarray, batch_size: int, seq_len: int, *,
                 reset_every: int = 0) -> None:
        data = np.asarray(data)
        if batch_size < 1 or seq_len < 1 or reset_every < 0:
            raise ValueError(f"need batch_size, seq_len >= 1 and reset_every >= 0, got "
                             f"{batch_size}, {seq_len}, {reset_every}")
        stream_length = (len(data) - 1) // batch_size
        if stream_length < seq_len:
            raise ValueError(
                f"{len(data)} tokens are too few for {batch_size} streams of one window of "
                f"{seq_len} (each stream needs {seq_len + 1}, so at least "
                f"{batch_size * seq_len + 1} tokens)")
        usable = stream_length * batch_size
        self.inputs = data[:usable].reshape(batch_size, stream_length)
        self.targets = data[1:usable + 1].reshape(batch_size, stream_length)
        self.seq_len, self.reset_every = seq_len, reset_every
        self.windows = stream_length // seq_len
        self.position = 0

    def next_batch(self):
        if self.position >= self.windows:
            self.position = 0
        batch = len(self.inputs)
        if self.position == 0:
            fresh = np.ones(batch, dtype=bool)
        elif self.reset_every:
            fresh = (self.position + np.arange(batch)) % self.reset_every == 0
        else:
            fresh = np.zeros(batch, dtype=bool)
        start = self.position * self.seq_len
        window = slice(start, start + self.seq_len)
        self.position += 1
        return self.inputs[:, window], self.targets[:, window], fresh


def reset_streams(state, fresh: np.ndarray):
    """The carried state with the rows of the ``fresh`` streams set to zeros (None when all
    are fresh). The arrays are copied, never changed in place."""
    if state is None or fresh.all():
        return None
    if not fresh.any():
        return state
    keep = ~fresh[:, None]
    return tuple(tuple(array * keep for array in layer) for layer in state)
