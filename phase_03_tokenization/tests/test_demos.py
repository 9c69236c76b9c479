import json

from phase_03_tokenization.__main__ import main
from phase_03_tokenization.bpe import BPETokenizer


def test_bpe_command_trains_saves_and_reports(tmp_path, capsys):
    assert main(["bpe", "--vocab-size", "300", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["vocab_size"] == 300
    assert summary["characters_per_token"] > 1.3  # 44 merges already compress
    assert BPETokenizer.load(tmp_path / "tokenizer.bpe").vocab_size == 300
    assert "characters per token" in capsys.readouterr().out


def test_word2vec_command_smoke(tmp_path, capsys):
    assert main(["word2vec", "--steps", "40", "--log-every", "20", "--dim", "8",
                 "--query", "king", "zzz", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["steps"] == 40 and list(summary["neighbours"]) == ["king"]
    assert len(summary["neighbours"]["king"]) == 8
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl", encoding="utf-8")]
    assert [r["step"] for r in rows] == [20, 40]
    assert rows[-1]["train_loss"] < 6 * 0.6932  # below the loss at initialisation
    for name in ("loss.png", "vectors.npz"):
        assert (tmp_path / name).is_file()
    assert "king:" in capsys.readouterr().out


def test_a_bad_option_is_a_clear_error(tmp_path, capsys):
    assert main(["word2vec", "--min-count", "100000", "--out", str(tmp_path)]) == 2
    assert "word2vec needs at least 2 words" in capsys.readouterr().err
