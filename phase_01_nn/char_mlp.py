"""The character MLP language model of Bengio, Ducharme, Vincent and Jauvin (2003), on names.

Each name is padded with '.' (start and end); the model reads the previous ``block_size``
characters, embeds each in ``n_embd`` dimensions, concatenates them, and predicts the next
character through one tanh hidden layer: logits = tanh(concat(C[ids]) W1 + b1) W2 + b2.
Notes: ``phase_01_nn/notes/07_char_mlp.md``.
"""

from dataclasses import asdict, dataclass

import numpy as np

from phase_00_math.softmax import softmax
from phase_01_nn.activations import Tanh
from phase_01_nn.embedding import Embedding
from phase_01_nn.linear import Linear
from phase_01_nn.module import Module, Sequential
from phase_01_nn.vocabulary import CharVocabulary

BOUNDARY = "."


@dataclass(frozen=True)
class CharMLPConfig:
    vocab_size: int
    block_size: int = 3
    n_embd: int = 10
    n_hidden: int = 200

    def __post_init__(self) -> None:
        for field, value in asdict(self).items():
            if value < 1:
                raise ValueError(f"CharMLPConfig.{field} must be >= 1, got {value}")


class Flatten(Module):
    """(B, T, C) -> (B, T * C): the concatenation of the context's embeddings."""

    def forward(self, x):
        self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self._shape)


class CharMLP(Sequential):
    def __init__(self, config: CharMLPConfig, *, rng: np.random.Generator, dtype=np.float32):
        c = config
        super().__init__(
            Embedding(c.vocab_size, c.n_embd, rng=rng, dtype=dtype),
            Flatten(),
            Linear(c.block_size * c.n_embd, c.n_hidden, rng=rng, nonlinearity="tanh", dtype=dtype),
            Tanh(),
            Linear(c.n_hidden, c.vocab_size, rng=rng, nonlinearity="linear", dtype=dtype),
        )
        self.config = config
        # A small output layer makes the first predictions near uniform: loss starts at log(V).
        self[4].params["w"] *= 0.1

    def forward(self, ids):
        if ids.ndim != 2 or ids.shape[1] != self.config.block_size:
            raise ValueError(
                f"CharMLP expects ids of shape (B, {self.config.block_size}), got {ids.shape}"
            )
        return super().forward(ids)


def names_vocabulary(words: list[str]) -> CharVocabulary:
    """The characters of ``words`` with the boundary '.' as id 0."""
    chars = sorted(set("".join(words)))
    if BOUNDARY in chars:
        raise ValueError(f"the boundary character {BOUNDARY!r} appears inside a word")
    return CharVocabulary([BOUNDARY, *chars])


def split_words(words: list[str], rng: np.random.Generator,
                fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)):
    """Shuffle with ``rng`` and cut into train / validation / test lists."""
    if abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    order = rng.permutation(len(words))
    shuffled = [words[i] for i in order]
    n1 = int(fractions[0] * len(words))
    n2 = n1 + int(fractions[1] * len(words))
    return shuffled[:n1], shuffled[n1:n2], shuffled[n2:]


def make_examples(words: list[str], vocab: CharVocabulary, block_size: int):
    """Every (context, next character) pair: X (N, block_size) int64, Y (N,) int64."""
    contexts, targets = [], []
    for word in words:
        context = [0] * block_size
        for index in [*vocab.encode(word).tolist(), 0]:
            contexts.append(context)
            targets.append(index)
            context = context[1:] + [index]
    return np.array(contexts, dtype=np.int64), np.array(targets, dtype=np.int64)


def sample_names(model: CharMLP, vocab: CharVocabulary, n: int, rng: np.random.Generator, *,
                 temperature: float = 1.0, max_length: int = 50) -> list[str]:
    """Draw ``n`` names, one character at a time, until the boundary or ``max_length``."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    was_training = model.training
    model.eval()
    names = []
    for _ in range(n):
        context = [0] * model.config.block_size
        chars = []
        for _ in range(max_length):
            logits = model.forward(np.array([context]))[0].astype(np.float64)
            index = int(rng.choice(len(vocab), p=softmax(logits / temperature)))
            if index == 0:
                break
            chars.append(vocab.itos[index])
            context = context[1:] + [index]
        names.append("".join(chars))
    model.train(was_training)
    return names
