"""Sequence to sequence (Sutskever, Vinyals and Le 2014): an encoder reads the source into its
final state, a decoder starts from that state and writes the target one token at a time.

Training uses teacher forcing: the decoder reads ``[GO, y_1, ..., y_L]`` (the true previous
tokens) and is scored on ``[y_1, ..., y_L, EOS]``. At test time it reads its own previous guess
(greedy decoding: the argmax) until it writes EOS. The task here is generated: reverse a string of
digits. Notes: ``phase_02_sequence/notes/06_seq2seq.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from phase_01_nn.embedding import Embedding
from phase_01_nn.linear import Linear
from phase_01_nn.module import Module
from phase_02_sequence.stacked import recurrent_layer

DIGITS = 10
GO, EOS = DIGITS, DIGITS + 1
VOCAB_SIZE = DIGITS + 2


@dataclass(frozen=True)
class Seq2SeqConfig:
    cell: str = "lstm"
    n_embd: int = 32
    n_hidden: int = 128


class Seq2Seq(Module):
    """Source and target embeddings, an encoder and a decoder layer of one cell type, and a
    linear head over the decoder's hidden states. The whole encoder state (h, and c for an LSTM)
    is handed to the decoder."""

    def __init__(self, config: Seq2SeqConfig, *, rng: np.random.Generator, dtype=np.float32):
        super().__init__()
        c = config
        self.source_embedding = self.add_module(
            "source_embedding", Embedding(VOCAB_SIZE, c.n_embd, rng=rng, dtype=dtype))
        self.target_embedding = self.add_module(
            "target_embedding", Embedding(VOCAB_SIZE, c.n_embd, rng=rng, dtype=dtype))
        self.encoder = self.add_module(
            "encoder", recurrent_layer(c.cell, c.n_embd, c.n_hidden, rng=rng, dtype=dtype))
        self.decoder = self.add_module(
            "decoder", recurrent_layer(c.cell, c.n_embd, c.n_hidden, rng=rng, dtype=dtype))
        self.head = self.add_module(
            "head", Linear(c.n_hidden, VOCAB_SIZE, rng=rng, init="xavier", dtype=dtype))
        self.config = config
        self._encoder_shape = None

    def encode(self, source):
        """source: (B, S) ids -> the encoder's final state."""
        source = np.asarray(source)
        if source.ndim != 2:
            raise ValueError(f"Seq2Seq expects source ids of shape (B, S), got {source.shape}")
        hs, state = self.encoder.forward(self.source_embedding.forward(source))
        self._encoder_shape = hs.shape
        return state

    def forward(self, source, target_in):
        """Teacher forcing: source (B, S), target_in (B, L) ids -> logits (B, L, V)."""
        target_in = np.asarray(target_in)
        if target_in.ndim != 2 or target_in.shape[0] != np.shape(source)[0]:
            raise ValueError(f"target_in must be (B, L) with the source's B = "
                             f"{np.shape(source)[0]}, got {target_in.shape}")
        state = self.encode(source)
        hs, _ = self.decoder.forward(self.target_embedding.forward(target_in), state)
        return self.head.forward(hs)

    def backward(self, dlogits):
        """Back through head, decoder and target embedding; the gradient of the decoder's
        initial state is the gradient of the encoder's final state."""
        dx, dstate = self.decoder.backward(self.head.backward(dlogits))
        self.target_embedding.backward(dx)
        dx, _ = self.encoder.backward(np.zeros(self._encoder_shape, dtype=dlogits.dtype), dstate)
        self.source_embedding.backward(dx)

    def greedy_decode(self, source, max_length: int) -> np.ndarray:
        """(B, max_length) ids: each step feeds back the argmax of the previous step, starting
        from GO; positions after a sequence's EOS are whatever the decoder wrote (ignored)."""
        was_training = self.training
        self.eval()
        state = self.encode(source)
        token = np.full((np.shape(source)[0], 1), GO)
        out = np.empty((np.shape(source)[0], max_length), dtype=np.int64)
        for t in range(max_length):
            hs, state = self.decoder.forward(self.target_embedding.forward(token), state)
            token = self.head.forward(hs).argmax(axis=-1)
            out[:, t] = token[:, 0]
        self.train(was_training)
        return out


def reverse_examples(source: np.ndarray):
    """source (B, L) digits -> (target_in (B, L + 1) = [GO, reversed], target_out (B, L + 1) =
    [reversed, EOS])."""
    reversed_digits = source[:, ::-1]
    batch = len(source)
    target_in = np.concatenate([np.full((batch, 1), GO), reversed_digits], axis=1)
    target_out = np.concatenate([reversed_digits, np.full((batch, 1), EOS)], axis=1)
    return target_in, target_out


class ReverseTask:
    """Random digit strings to reverse, with a held-out test set that training never draws.

    The test set is ``n_test`` distinct strings of ``test_length`` digits; a training batch of
    that length redraws any string that is in the test set.
    """

    def __init__(self, rng: np.random.Generator, *, test_length: int = 8, n_test: int = 2000):
        if n_test > DIGITS**test_length // 2:
            raise ValueError(f"{n_test} test strings is more than half of the "
                             f"{DIGITS**test_length} strings of length {test_length}")
        codes = set()
        while len(codes) < n_test:
            codes.update(rng.integers(0, DIGITS**test_length, size=n_test - len(codes)).tolist())
        self.test_length = test_length
        self.test_codes = np.array(sorted(codes))
        self.test_source = self._digits(self.test_codes, test_length)

    @staticmethod
    def _digits(codes: np.ndarray, length: int) -> np.ndarray:
        powers = DIGITS ** np.arange(length - 1, -1, -1)
        return (codes[:, None] // powers) % DIGITS

    def train_batch(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        """(batch, length) digits, none of them a test string."""
        source = rng.integers(0, DIGITS, size=(batch, length))
        if length == self.test_length:
            powers = DIGITS ** np.arange(length - 1, -1, -1)
            held_out = np.isin(source @ powers, self.test_codes)
            while held_out.any():
                source[held_out] = rng.integers(0, DIGITS, size=(int(held_out.sum()), length))
                held_out = np.isin(source @ powers, self.test_codes)
        return source


def exact_match(model: Seq2Seq, source: np.ndarray, *, batch: int = 1000) -> float:
    """The fraction of sources whose greedy decoding is exactly the reversal followed by EOS."""
    _, target_out = reverse_examples(source)
    hits = 0
    for start in range(0, len(source), batch):
        chunk = source[start:start + batch]
        decoded = model.greedy_decode(chunk, chunk.shape[1] + 1)
        hits += int(np.all(decoded == target_out[start:start + batch], axis=1).sum())
    return hits / len(source)
