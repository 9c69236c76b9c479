import json

import pytest
import tiktoken
from hypothesis import given
from tiktoken.load import data_gym_to_mergeable_bpe_ranks

from phase_01_nn.corpus import corpus_path, load_corpus
from phase_03_tokenization.bpe import BPETokenizer
from phase_03_tokenization.gpt2_encoding import bytes_to_unicode, read_gpt2_files
from phase_03_tokenization.pretokenize import GPT2_PATTERN
from phase_03_tokenization.tests.strategies import unicode_texts

EOT = "<|endoftext|>"


@pytest.fixture(scope="module")
def files():
    return str(corpus_path("gpt2-vocab")), str(corpus_path("gpt2-encoder"))


@pytest.fixture(scope="module")
def ours(files):
    return BPETokenizer.from_gpt2(*files)


@pytest.fixture(scope="module")
def reference(files):
    """tiktoken's GPT-2 encoding, built offline from the same two files."""
    vocab_bpe, encoder_json = files
    ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=vocab_bpe,
                                            encoder_json_file=encoder_json)
    return tiktoken.Encoding(name="gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={EOT: 50256})


def test_byte_to_unicode_map():
    mapping = bytes_to_unicode()
    assert len(set(mapping.values())) == 256
    assert mapping[ord("A")] == "A" and mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ"
    assert all(ch.isprintable() and not ch.isspace() for ch in mapping.values())


def test_gpt2_layout(ours):
    assert ours.vocab_size == 50257
    assert ours.special_tokens == {EOT: 50256}
    assert ours.byte_ids[ord("!")] == 0
    assert ours.vocab[ours.encode(" the")[0]] == b" the"


def test_tiny_shakespeare_ids_equal_tiktoken(ours, reference):
    text = load_corpus("tinyshakespeare")
    ids = ours.encode(text)
    assert ids == reference.encode(text)
    assert ours.decode(ids) == text


@given(text=unicode_texts())
def test_unicode_ids_equal_tiktoken_and_round_trip(ours, reference, text):
    ids = ours.encode(text)
    assert ids == reference.encode(text)
    assert ours.decode(ids) == text


def test_special_tokens_and_invalid_utf8_as_tiktoken(ours, reference):
    text = f"Hello{EOT} world"
    assert ours.encode(text, allowed_special="all") == reference.encode(text,
                                                                        allowed_special="all")
    assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
    with pytest.raises(ValueError, match="special token"):
        ours.encode(text)
    cut = ours.encode("日本")[:1] + [50256] + ours.encode(" é")
    assert ours.decode(cut) == reference.decode(cut)
    assert "\ufffd" in ours.decode(ours.encode("日")[:1])


def test_mismatched_files_are_clear_errors(files, tmp_path):
    vocab_bpe, encoder_json = files
    encoder = json.loads(open(encoder_json, encoding="utf-8").read())
    lines = open(vocab_bpe, encoding="utf-8").read().split("\n")[:4]
    small = tmp_path / "vocab.bpe"
    small.write_text("\n".join([lines[0], lines[2], lines[1]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab.bpe:2: merge .* should make id 256"):
        read_gpt2_files(small, encoder_json)
    small.write_text("no header\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'#version'"):
        read_gpt2_files(small, encoder_json)
    del encoder["Ġ"]
    broken = tmp_path / "encoder.json"
    broken.write_text(json.dumps(encoder), encoding="utf-8")
    with pytest.raises(ValueError, match="lacks the byte tokens"):
        read_gpt2_files(vocab_bpe, broken)
