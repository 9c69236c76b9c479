import json
import sys

import numpy as np
import pytest

from phase_01_nn.corpus import corpus_path
from phase_03_tokenization.bpe import BPETokenizer
from phase_08_train_124m import prepare as prepare_module
from phase_08_train_124m.documents import local_documents
from phase_08_train_124m.loader import split_paths
from phase_08_train_124m.prepare import main, prepare, read_meta
from phase_08_train_124m.shard_file import read_shard

DOCS = ["First document: the quick brown fox.", "Zweites Dokument — naïve café, 日本語 ✓",
        "third\n\nwith blank lines and a literal <|endoftext|> inside", "4", "Fifth and last."]


@pytest.fixture(scope="module")
def gpt2():
    return BPETokenizer.from_gpt2(corpus_path("gpt2-vocab"), corpus_path("gpt2-encoder"))


@pytest.fixture
def corpus(tmp_path):
    """Two .txt documents and a .jsonl of three, in a directory (read in name order)."""
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "a.txt").write_text(DOCS[0], encoding="utf-8")
    (root / "b.txt").write_text(DOCS[1], encoding="utf-8")
    (root / "c.jsonl").write_text("\n".join(json.dumps({"id": i, "text": d})
                                            for i, d in enumerate(DOCS[2:])) + "\n",
                                  encoding="utf-8")
    return root


def _prepare(corpus, out, **kwargs):
    options = dict(source=str(corpus), shard_tokens=11, val_tokens=7, quiet=True)
    return prepare(local_documents(corpus), out, **{**options, **kwargs})


def _stream(out):
    return np.concatenate([read_shard(p) for p in split_paths(out, "val")
                           + split_paths(out, "train")])


def test_decoding_the_shards_gives_back_the_documents_each_after_end_of_text(corpus, tmp_path,
                                                                             gpt2):
    meta = _prepare(corpus, tmp_path / "out")
    stream = _stream(tmp_path / "out")
    assert gpt2.decode(stream) == "".join("<|endoftext|>" + d for d in DOCS)
    assert (stream == 50256).sum() == len(DOCS)  # the literal one inside a document is text
    sizes = [s["tokens"] for s in meta["shards"]]
    assert meta["shards"][0]["file"] == "val_000000.bin" and sizes[0] == 7
    assert all(size == 11 for size in sizes[1:-1]) and 0 < sizes[-1] <= 11
    assert sum(sizes) == len(stream) and meta["complete"] and meta["vocab_size"] == 50257


def test_tiktoken_and_a_worker_pool_write_the_same_shards(corpus, tmp_path):
    _prepare(corpus, tmp_path / "one")
    _prepare(corpus, tmp_path / "pool", tokenizer="tiktoken", workers=2)
    assert _stream(tmp_path / "pool").tolist() == _stream(tmp_path / "one").tolist()


class Interrupted(Exception):
    pass


def _stopping_after(documents, n):
    for i, document in enumerate(documents):
        if i == n:
            raise Interrupted
        yield document


def test_a_stopped_run_resumes_after_its_last_shard_without_retokenizing(corpus, tmp_path,
                                                                         monkeypatch):
    whole = _prepare(corpus, tmp_path / "whole")
    with pytest.raises(Interrupted):
        prepare(_stopping_after(local_documents(corpus), 4), tmp_path / "split",
                source=str(corpus), shard_tokens=11, val_tokens=7, quiet=True)
    partial = read_meta(tmp_path / "split")
    assert not partial["complete"] and 1 <= len(partial["shards"]) < len(whole["shards"])
    first_doc = partial["shards"][-1]["end"][0]
    assert first_doc > 0
    encoded = []
    original = prepare_module.encode_document
    monkeypatch.setattr(prepare_module, "encode_document",
                        lambda text: encoded.append(text) or original(text))
    resumed = _prepare(corpus, tmp_path / "split")
    assert encoded == DOCS[first_doc:]
    assert _stream(tmp_path / "split").tolist() == _stream(tmp_path / "whole").tolist()
    assert [s["file"] for s in resumed["shards"]] == [s["file"] for s in whole["shards"]]


def test_resuming_with_other_settings_or_into_a_foreign_directory_fails(corpus, tmp_path):
    _prepare(corpus, tmp_path / "out")
    with pytest.raises(ValueError, match="other settings .*shard_tokens: saved 11, now 12"):
        _prepare(corpus, tmp_path / "out", shard_tokens=12)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.bin").write_bytes(b"1")
    with pytest.raises(ValueError, match="no meta.json"):
        _prepare(corpus, tmp_path / "junk")


def test_a_corpus_too_small_for_the_validation_shard_is_named(corpus, tmp_path):
    with pytest.raises(ValueError, match="before the validation shard's --val-tokens 100000 were "
                                         "filled.*--val-tokens \\d+\\)"):
        _prepare(corpus, tmp_path / "out", val_tokens=100_000)
    with pytest.raises(ValueError, match="none is left to train on"):
        prepare(iter(["short"]), tmp_path / "out2", source="x", val_tokens=2, quiet=True)


def test_bad_jsonl_lines_are_named_with_their_line_number(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "no text"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"c.jsonl:2 has no string field 'text' .*--text-field"):
        list(local_documents(path))
    path.write_text('{"text": "ok"}\nnot json\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"c.jsonl:2 is not valid JSON"):
        list(local_documents(path))


def test_the_command_line_runs_and_explains_its_errors(corpus, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    assert main([str(corpus / "a.txt"), "--out", str(out), "--val-tokens", "3",
                 "--shard-tokens", "5", "--workers", "1"]) == 0
    assert "training and 3 validation tokens" in capsys.readouterr().out
    assert main([str(tmp_path / "absent.txt"), "--out", str(out)]) == 2
    assert "no corpus at" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    assert main(["--fineweb", "--out", str(tmp_path / "fw")]) == 2
    assert "needs the optional package 'datasets'" in capsys.readouterr().err
