import numpy as np
import pytest
import regex
from hypothesis import given
from hypothesis import strategies as st

from phase_01_nn.corpus import load_corpus
from phase_03_tokenization.bpe import (
    BPETokenizer,
    encode_chunk_reference,
    encode_chunks,
    merge_table,
)
from phase_03_tokenization.tests.strategies import small_alphabet_texts, unicode_texts

SPECIAL = "<|endoftext|>"


@pytest.fixture(scope="module")
def shakespeare_tokenizer():
    return BPETokenizer.train(load_corpus("tinyshakespeare")[:100_000], 600,
                              special_tokens=[SPECIAL])


def _reference_ids(tokenizer, text):
    merge_ids = {pair: 256 + i for i, pair in enumerate(tokenizer.merges)}
    return [i for chunk in regex.findall(tokenizer.pattern, text)
            for i in encode_chunk_reference(chunk.encode("utf-8"), tokenizer.byte_ids, merge_ids)]


def test_vocabulary_layout(shakespeare_tokenizer):
    tok = shakespeare_tokenizer
    assert tok.vocab_size == 600
    assert len(tok.merges) == 600 - 256 - 1
    assert tok.vocab[ord("e")] == b"e"
    a, b = tok.merges[10]
    assert tok.vocab[266] == tok.vocab[a] + tok.vocab[b]
    assert tok.special_tokens == {SPECIAL: 599}


@given(text=unicode_texts())
def test_round_trip_on_arbitrary_unicode(shakespeare_tokenizer, text):
    assert shakespeare_tokenizer.decode(shakespeare_tokenizer.encode(text)) == text


@given(text=st.one_of(unicode_texts(), small_alphabet_texts("the ", 200)))
def test_kernel_encoding_equals_the_reference(shakespeare_tokenizer, text):
    assert shakespeare_tokenizer.encode_ordinary(text) == _reference_ids(shakespeare_tokenizer,
                                                                          text)


@given(text=small_alphabet_texts(max_size=60), probe=unicode_texts())
def test_a_trained_tokenizer_encodes_its_training_chunks_and_anything_else(text, probe):
    tokenizer = BPETokenizer.train(text, 280)
    for sample in (text, probe):
        ids = tokenizer.encode(sample)
        assert ids == _reference_ids(tokenizer, sample)
        assert tokenizer.decode(ids) == sample


def test_encode_chunks_handles_empty_and_single_byte_chunks():
    table = merge_table(np.array([[97, 98]], dtype=np.int64))
    data = np.frombuffer(b"abxab", dtype=np.uint8)
    ids, offsets = encode_chunks(data, np.array([0, 0, 2, 3, 5]), np.arange(256), table)
    assert ids.tolist() == [256, 120, 256]
    assert offsets.tolist() == [0, 0, 1, 2, 3]


def test_frequent_words_become_single_tokens(shakespeare_tokenizer):
    ids = shakespeare_tokenizer.encode(" the king")
    assert len(ids) <= 3
    assert len(shakespeare_tokenizer.encode(load_corpus("tinyshakespeare")[:5000])) < 3000


def test_special_tokens_need_allowed_special(shakespeare_tokenizer):
    tok = shakespeare_tokenizer
    text = f"first{SPECIAL}second"
    with pytest.raises(ValueError, match=r"contains the special token '<\|endoftext\|>'; pass "
                                         r"allowed_special"):
        tok.encode(text)
    ids = tok.encode(text, allowed_special={SPECIAL})
    assert ids == tok.encode("first") + [599] + tok.encode("second")
    assert tok.encode(text, allowed_special="all") == ids
    assert tok.decode(ids) == text
    assert 599 not in tok.encode_ordinary(text)
    with pytest.raises(ValueError, match=r"allowed_special names \['<s>'\]"):
        tok.encode("x", allowed_special={"<s>"})


def test_decode_rejects_ids_outside_the_vocabulary_and_replaces_invalid_utf8(
        shakespeare_tokenizer):
    tok = shakespeare_tokenizer
    with pytest.raises(ValueError, match=r"token id 600 is outside the vocabulary \[0, 600\)"):
        tok.decode([1, 600])
    with pytest.raises(ValueError, match=r"token id -1 is outside"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="integers"):
        tok.decode([1.0])
    assert tok.decode([]) == ""
    assert tok.decode([0xE6, ord("a")]) == "\ufffda"
    assert tok.decode([0xE2, 0x82, 0xAC]) == "€"
    assert tok.decode([0xE2, 0x82]) == "\ufffd"  # a cut-off sequence is one U+FFFD


def test_bad_merges_are_rejected():
    with pytest.raises(ValueError, match=r"merge 1 \(97, 300\) must join two earlier ids"):
        BPETokenizer([(97, 98), (97, 300)])
    with pytest.raises(ValueError, match="not repeat"):
        BPETokenizer([(97, 98), (97, 98)])
    with pytest.raises(ValueError, match="byte_ids"):
        BPETokenizer([], byte_ids=[0] * 256)


def test_save_load_round_trip(shakespeare_tokenizer, tmp_path):
    path = tmp_path / "tok.bpe"
    shakespeare_tokenizer.save(path)
    assert path.read_text(encoding="utf-8").splitlines()[0] == "tfs-bpe 1"
    loaded = BPETokenizer.load(path)
    assert loaded.merges == shakespeare_tokenizer.merges
    assert loaded.special_tokens == shakespeare_tokenizer.special_tokens
    assert loaded.pattern == shakespeare_tokenizer.pattern
    text = f"O Romeo, Romeo!{SPECIAL} ünïcödé 👍"
    assert loaded.encode(text, allowed_special="all") == \
        shakespeare_tokenizer.encode(text, allowed_special="all")


def test_load_rejects_bad_files(shakespeare_tokenizer, tmp_path):
    path = tmp_path / "tok.bpe"
    shakespeare_tokenizer.save(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    cases = {
        "other.txt": (["tfs-bpe 2"] + lines[1:], "not a tokenizer in the format 'tfs-bpe 1'"),
        "short.txt": (lines[:-3], "expected exactly 343 merge lines"),
        "swapped.txt": ([lines[0], lines[2], lines[1]] + lines[3:], "line 2 should start with"),
        "bad_merge.txt": (lines[:5] + ["97 9999"] + lines[6:], r"merge 0 \(97, 9999\)"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_text("\n".join(content) + "\n", encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            BPETokenizer.load(tmp_path / name)


@given(texts=st.lists(st.one_of(unicode_texts(), small_alphabet_texts("the ", 200)),
                      max_size=6))
def test_the_batch_equals_one_text_at_a_time(shakespeare_tokenizer, texts):
    expected = [shakespeare_tokenizer.encode_ordinary(text) for text in texts]
    assert shakespeare_tokenizer.encode_ordinary_batch(texts, num_threads=2) == expected
    assert shakespeare_tokenizer.encode_ordinary_batch(texts, num_threads=1) == expected
