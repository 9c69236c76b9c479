"""Reading GPT-2's tokenizer files: ``vocab.bpe`` (the merges) and ``encoder.json`` (the ids).

GPT-2 stores its tokens as printable strings, not bytes: ``bytes_to_unicode`` gives each of the
256 bytes a visible character (printable Latin-1 bytes keep their own; the others, such as the
space and the control bytes, are moved to U+0100 and up, so a space is written ``Ġ``). A token
string decodes to bytes character by character through the inverse map.
"""

from __future__ import annotations

import json
import os

import numpy as np


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> character map: visible bytes keep their character, the 68 others get
    U+0100, U+0101, ... in byte order."""
    visible = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
               *range(ord("®"), ord("ÿ") + 1)]
    mapping = {b: chr(b) for b in visible}
    shifted = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shifted)
            shifted += 1
    return mapping


def token_bytes(token: str, byte_decoder: dict[str, int]) -> bytes:
    """The bytes of a GPT-2 token string such as ``"Ġthe"`` (b" the")."""
    try:
        return bytes(byte_decoder[ch] for ch in token)
    except KeyError as error:
        raise ValueError(f"token {token!r} has a character outside GPT-2's byte alphabet: "
                         f"{error.args[0]!r}") from None


def read_gpt2_files(vocab_bpe_path: str | os.PathLike, encoder_json_path: str | os.PathLike):
    """GPT-2's tokenizer as ``(merges, byte_ids, special_tokens)``.

    ``merges[i]`` is the (left_id, right_id) pair that makes id 256 + i, ``byte_ids[b]`` the id
    of byte b (GPT-2 numbers its 256 byte tokens in ``bytes_to_unicode`` order, not byte order),
    and ``special_tokens`` the tokens after the last merge (``<|endoftext|>`` = 50256), by id.
    The two files are cross-checked: every merge's result must have id 256 + i.
    """
    with open(encoder_json_path, encoding="utf-8") as handle:
        encoder: dict[str, int] = json.load(handle)
    byte_encoder = bytes_to_unicode()
    missing = [ch for ch in byte_encoder.values() if ch not in encoder]
    if missing:
        raise ValueError(f"{encoder_json_path} lacks the byte tokens {missing[:5]}")
    byte_ids = np.array([encoder[byte_encoder[b]] for b in range(256)], dtype=np.int64)
    if sorted(byte_ids.tolist()) != list(range(256)):
        raise ValueError(f"{encoder_json_path} does not give the 256 bytes the ids 0 to 255")

    with open(vocab_bpe_path, encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    if not lines or not lines[0].startswith("#version"):
        raise ValueError(f"{vocab_bpe_path} does not start with a '#version' line: "
                         f"{lines[0][:40] if lines else ''!r}")
    merges = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) != 2 or any(p not in encoder for p in parts):
            raise ValueError(f"{vocab_bpe_path}:{number}: expected two known tokens, got {line!r}")
        left, right = parts
        expected = 256 + len(merges)
        if encoder.get(left + right) != expected:
            raise ValueError(f"{vocab_bpe_path}:{number}: merge {line!r} should make id "
                             f"{expected} but {encoder_json_path} gives "
                             f"{encoder.get(left + right)}")
        merges.append((encoder[left], encoder[right]))
    n_tokens = 256 + len(merges)
    specials = sorted((i, token) for token, i in encoder.items() if i >= n_tokens)
    if [i for i, _ in specials] != list(range(n_tokens, n_tokens + len(specials))):
        raise ValueError(f"{encoder_json_path}: ids after the merges are not consecutive")
    return merges, byte_ids, [token for _, token in specials]
