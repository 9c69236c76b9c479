"""Sampling from a GPT: one token at a time from softmax(logits / temperature), restricted to the
``top_k`` most likely tokens and to the smallest set whose probability reaches ``top_p``
(nucleus sampling, Holtzman et al. 2019), stopping at ``max_new_tokens`` or an end token.

No key-value cache: each step reruns the last ``block_size`` tokens, which is simple and costs
little at the sizes this phase trains. A seed makes a sample reproducible: the draws come from
one ``torch.Generator`` and nothing else.
Notes: ``phase_07_gpt/notes/02_generation.md``.
"""

from __future__ import annotations

import math

import torch

from phase_07_gpt.model import GPT


def filter_logits(logits: torch.Tensor, *, top_k: int | None = None,
                  top_p: float | None = None) -> torch.Tensor:
    """logits: (B, V) -> (B, V) with the excluded tokens set to -inf. top-k keeps the k largest;
    top-p keeps the most likely tokens until their probability sum reaches p (the token that
    crosses p is kept, so at least one token always survives)."""
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = (cumulative - sorted_logits.softmax(dim=-1)) >= top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def choose_next(logits: torch.Tensor, temperature: float, top_k: int | None,
                top_p: float | None, generator: torch.Generator) -> torch.Tensor:
    """(B, V) last-position logits -> (B,) next tokens: the argmax at temperature 0, otherwise a
    draw from the filtered, temperature-scaled softmax."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = filter_logits(logits / temperature, top_k=top_k, top_p=top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def _check_options(temperature: float, top_k: int | None, top_p: float | None,
                   max_new_tokens: int) -> None:
    if not (math.isfinite(temperature) and temperature >= 0):
        raise ValueError(f"temperature must be >= 0 (0 = always the most likely token), "
                         f"got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1 or None, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p}")
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")


@torch.no_grad()
def generate(model: GPT, ids: torch.Tensor, max_new_tokens: int, *, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             stop_token: int | None = None, seed: int | None = None) -> torch.Tensor:
    """ids: (B, T0) -> (B, T0 + n), n <= max_new_tokens. temperature 0 picks the most likely
    token. With ``stop_token``, a row that emits it keeps emitting it, and generation ends when
    every row has; the stop token is included in the output."""
    _check_options(temperature, top_k, top_p, max_new_tokens)
    vocab = model.config.vocab_size
    if ids.dim() != 2 or ids.size(1) < 1:
        raise ValueError(f"generate needs a prompt of shape (B, T0) with T0 >= 1, "
                         f"got {tuple(ids.shape)}")
    if ids.min() < 0 or ids.max() >= vocab:
        raise ValueError(f"prompt ids must be in [0, {vocab}), got ids from {int(ids.min())} "
                         f"to {int(ids.max())}")
    if stop_token is not None and not 0 <= stop_token < vocab:
        raise ValueError(f"stop_token {stop_token} is outside the vocabulary [0, {vocab})")
    generator = torch.Generator(device=ids.device)
    generator.manual_seed(torch.seed() if seed is None else seed)
    was_training = model.training
    model.eval()
    done = torch.zeros(ids.size(0), dtype=torch.bool, device=ids.device)
    for _ in range(max_new_tokens):
        logits, _ = model(ids[:, -model.config.block_size:])
        logits = logits[:, -1, :].float()
        nxt = choose_next(logits, temperature, top_k, top_p, generator)
        if stop_token is not None:
            nxt = torch.where(done, torch.full_like(nxt, stop_token), nxt)
            done |= nxt == stop_token
        ids = torch.cat([ids, nxt[:, None]], dim=1)
        if stop_token is not None and bool(done.all()):
            break
    model.train(was_training)
    return ids
