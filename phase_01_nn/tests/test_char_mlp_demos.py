import json

import numpy as np
import pytest

from phase_01_nn.__main__ import main
from phase_01_nn.char_mlp import (
    CharMLP,
    CharMLPConfig,
    make_examples,
    names_vocabulary,
    sample_names,
    split_words,
)
from phase_01_nn.demos import NamesConfig, SpiralsConfig, run_names, run_spirals
from phase_01_nn.module import check_module_gradients

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn",
         "abigail", "emily", "ella", "elizabeth", "camila", "luna", "sofia", "avery", "mila"]


def test_examples_pad_with_the_boundary():
    vocab = names_vocabulary(["ab"])
    x, y = make_examples(["ab"], vocab, block_size=2)
    np.testing.assert_array_equal(x, [[0, 0], [0, 1], [1, 2]])
    np.testing.assert_array_equal(y, [1, 2, 0])


def test_vocabulary_errors():
    vocab = names_vocabulary(WORDS)
    with pytest.raises(ValueError, match=r"characters \['Z'\] of 'eZ' are not in the vocabulary"):
        vocab.encode("eZ")
    with pytest.raises(ValueError, match="boundary"):
        names_vocabulary(["a.b"])


def test_split_is_seeded_and_complete():
    a = split_words(WORDS, np.random.default_rng(1))
    b = split_words(WORDS, np.random.default_rng(1))
    assert a == b
    assert sorted(a[0] + a[1] + a[2]) == sorted(WORDS)
    assert len(a[0]) == int(0.8 * len(WORDS))


def test_char_mlp_gradients_and_initial_loss():
    vocab = names_vocabulary(WORDS)
    config = CharMLPConfig(vocab_size=len(vocab), block_size=3, n_embd=2, n_hidden=5)
    model = CharMLP(config, rng=np.random.default_rng(0), dtype=np.float64)
    x, _ = make_examples(WORDS[:2], vocab, 3)
    check_module_gradients(model, x)
    with pytest.raises(ValueError, match=r"ids of shape \(B, 3\)"):
        model.forward(np.zeros((2, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="must be >= 1"):
        CharMLPConfig(vocab_size=27, block_size=0)


def test_sampling_is_reproducible():
    vocab = names_vocabulary(WORDS)
    model = CharMLP(CharMLPConfig(vocab_size=len(vocab)), rng=np.random.default_rng(0))
    a = sample_names(model, vocab, 5, np.random.default_rng(3))
    b = sample_names(model, vocab, 5, np.random.default_rng(3))
    assert a == b and len(a) == 5
    with pytest.raises(ValueError, match="temperature"):
        sample_names(model, vocab, 1, np.random.default_rng(0), temperature=0)


def test_names_run_learns_and_leaves_its_records(tmp_path):
    data = tmp_path / "names.txt"
    data.write_text("\n".join(WORDS * 20) + "\n", encoding="utf-8")
    config = NamesConfig(steps=300, eval_every=100, warmup_steps=10, samples=3)
    summary = run_names(config, tmp_path / "run", str(data))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r["step"] for r in rows] == [100, 200, 300]
    assert summary["val_loss"] < np.log(27) - 1.0  # far below the uniform guess: it learned
    for name in ("loss.png", "model.npz", "samples.txt", "summary.json"):
        assert (tmp_path / "run" / name).is_file()
    assert len(summary["samples"]) == 3


def test_spirals_run_small(tmp_path):
    summary = run_spirals(SpiralsConfig(steps=300, hidden=32), tmp_path)
    assert summary["train_accuracy"] > 0.9
    assert (tmp_path / "decision_boundary.png").is_file()


def test_cli_missing_corpus_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("TFS_DATA_DIR", raising=False)
    monkeypatch.setenv("TFS_CACHE_DIR", str(tmp_path / "cache"))
    code = main(["names", "--data", str(tmp_path / "nope.txt"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "no file at the given path" in capsys.readouterr().err


def test_cli_perceptron(tmp_path, capsys):
    assert main(["perceptron", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "separable: converged=True" in out and "xor: converged=False" in out
    assert (tmp_path / "perceptron.png").is_file()
