"""Every error a user can cause, through the real command lines (issue 21).

The table runs each command's ``main`` in this process (the same function ``python -m`` runs,
error boundary included) and checks what a user sees: exit status 2, one ``error: ...`` line
that names the bad value, no traceback. A few rows run as real subprocesses, to check the exit
status of the process itself. The fault tests below the table break a run on purpose (a
diverging learning rate, a full disk, a write killed halfway, flipped bytes) and check that the
last good checkpoint still loads and that a resumed run ends exactly where an uninterrupted one
does. Everything runs on tiny models and a corpus written to a temporary directory.
"""
# ruff: noqa: E501  (the table reads best as one row per line)

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from phase_01_nn import __main__ as phase_01
from phase_01_nn.checkpoint import CheckpointError, load_checkpoint, previous_path
from phase_01_nn.command_line import UserError, run_command
from phase_02_sequence import __main__ as phase_02
from phase_03_tokenization import __main__ as phase_03
from phase_03_tokenization.bpe import BPETokenizer, SmallerVocabularyWarning
from phase_04_attention import __main__ as phase_04
from phase_05_transformer_numpy import sample as phase_05_sample
from phase_05_transformer_numpy import train as phase_05_train
from phase_06_torch_parity import __main__ as phase_06
from phase_07_gpt import sample as phase_07_sample
from phase_07_gpt import train as phase_07_train
from phase_07_gpt.checkpoint import read_checkpoint
from phase_08_train_124m import prepare as phase_08_prepare
from phase_08_train_124m import train as phase_08_train
from phase_08_train_124m.shard_file import write_shard

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the king and queen walk by night to see what light doth break upon the hill where "
         "my lord hath sent his men with swords and words of peace").split()


def make_text(seed: int = 0, lines: int = 90) -> str:
    """Every word once, then lines of words drawn by a seeded generator: a few thousand
    characters, ASCII."""
    rng = np.random.default_rng(seed)
    return " ".join(WORDS) + "\n" + "".join(" ".join(rng.choice(WORDS, size=6)).capitalize() + ".\n"
                   for _ in range(lines))


P5 = ["--preset", "tiny", "--n-embd", "16", "--block-size", "8", "--eval-iters", "1",
      "--warmup-iters", "0", "--log-interval", "1"]
P7 = ["--preset", "tiny", "--block-size", "16", "--eval-iters", "1", "--warmup-iters", "0",
      "--device", "cpu", "--threads", "1"]
P2 = ["--n-hidden", "16", "--seq-len", "16", "--batch-size", "4", "--eval-seq-len", "16",
      "--warmup-steps", "0", "--eval-every", "2", "--prompt", "the king"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The corpora and the small trained runs the rows point at (built once)."""
    root = tmp_path_factory.mktemp("bad_inputs")
    text = make_text()
    paths = {"root": root, "corpus": root / "corpus.txt", "latin1": root / "latin1.txt",
             "a_file": root / "a_file", "missing": root / "missing" / "nowhere.txt",
             "p2": root / "p2", "p5": root / "p5", "p7": root / "p7"}
    paths["corpus"].write_text(text, encoding="utf-8")
    paths["latin1"].write_bytes(text.encode() + "caf\u00e9\n".encode("latin-1"))
    paths["a_file"].write_text("not a directory\n", encoding="utf-8")
    # the same length, one training character changed: another text the size check misses
    other = "X" + text[1:]
    (root / "other.txt").write_text(other, encoding="utf-8")
    paths["other"] = root / "other.txt"
    quiet = {"stdout": None}
    with _silenced(quiet):
        assert phase_02.main(["charlm", "--data", str(paths["corpus"]), "--steps", "4",
                              "--out", str(paths["p2"]), *P2]) == 0
        assert phase_05_train.main([*P5, "--data", str(paths["corpus"]), "--max-iters", "4",
                                    "--eval-interval", "2", "--out", str(paths["p5"])]) == 0
        assert phase_07_train.main([*P7, "--data", str(paths["corpus"]), "--max-iters", "4",
                                    "--eval-interval", "2", "--out", str(paths["p7"])]) == 0
    return {k: str(v) for k, v in paths.items()}


class _silenced:
    """Keep the fixture's training output out of the rows' captured text."""

    def __init__(self, _):
        self.streams = None

    def __enter__(self):
        self.streams = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115

    def __exit__(self, *exc):
        sys.stdout.close()
        sys.stdout, sys.stderr = self.streams


def _copy_run(files, name: str, tmp_path: Path) -> str:
    target = tmp_path / name
    shutil.copytree(files[name], target)
    return str(target)


def flip_bytes(path: str | Path, count: int = 64) -> None:
    """Invert ``count`` bytes in the middle of a file, as a bad disk or copy would."""
    data = bytearray(Path(path).read_bytes())
    middle = len(data) // 2
    data[middle:middle + count] = bytes(b ^ 0xFF for b in data[middle:middle + count])
    Path(path).write_bytes(bytes(data))


def truncate(path: str | Path, keep: float = 0.5) -> None:
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[:int(len(data) * keep)])


def without_checksum(path: str | Path) -> None:
    Path(str(path) + ".sha256").unlink()


# Each row: an id, the command's main, its arguments ({name} filled from ``files``, {out} a
# fresh directory), what the error line must contain, and an optional set-up that breaks
# something first (it gets the files and tmp_path and returns extra names for the arguments).
ROWS = [
    # phase 1
    ("p1-steps-0", phase_01, ["spirals", "--steps", "0", "--out", "{out}"], "--steps must be > 0, got 0"),
    ("p1-lr-nan", phase_01, ["spirals", "--lr", "nan", "--out", "{out}"], "--lr must be a finite number, got nan"),
    ("p1-names-missing", phase_01, ["names", "--data", "{missing}", "--out", "{out}"], "nowhere.txt"),
    ("p1-out-is-a-file", phase_01, ["perceptron", "--out", "{a_file}"], "a_file is a file where a directory"),
    ("p1-names-not-utf8", phase_01, ["names", "--data", "{latin1}", "--out", "{out}"], "latin1.txt is not UTF-8 text: byte 0xe9"),
    # phase 2
    ("p2-unknown-cell", phase_02, ["charlm", "--cell", "gru2", "--out", "{out}"], "unknown cell 'gru2'"),
    ("p2-layers-0", phase_02, ["charlm", "--n-layer", "0", "--out", "{out}"], "n_layer must be >= 1, got 0"),
    ("p2-lr-inf", phase_02, ["charlm", "--lr", "inf", "--out", "{out}"], "--lr must be a finite number, got inf"),
    ("p2-not-utf8", phase_02, ["charlm", "--data", "{latin1}", "--out", "{out}", *P2], "latin1.txt is not UTF-8"),
    ("p2-resume-nothing", phase_02, ["charlm", "--data", "{corpus}", "--resume", "--out", "{out}"], "no checkpoint at"),
    ("p2-resume-new-width", phase_02, ["charlm", "--data", "{corpus}", "--resume", "--out", "{p2}", "--n-hidden", "8"], "cannot change --n-hidden 8 (the checkpoint has 16)"),
    ("p2-resume-other-text", phase_02, ["charlm", "--data", "{other}", "--resume", "--out", "{p2}"], "was trained on other data"),
    ("p2-eval-window", phase_02, ["charlm", "--data", "{corpus}", "--out", "{out}", *P2, "--eval-seq-len", "100000"], "--eval-seq-len 100000"),
    ("p2-seq2seq-lengths", phase_02, ["seq2seq", "--min-length", "5", "--max-length", "2", "--out", "{out}"], "got 5 and 2"),
    ("p2-warmup-over-steps", phase_02, ["charlm", "--data", "{corpus}", "--steps", "3", "--warmup-steps", "9", "--out", "{out}"], "--warmup-steps 9 is more than --steps 3"),
    # phase 3
    ("p3-vocab-below-bytes", phase_03, ["bpe", "--vocab-size", "100", "--out", "{out}"], "--vocab-size must be >= 256 (one id per byte comes first), got 100"),
    ("p3-not-utf8", phase_03, ["bpe", "--data", "{latin1}", "--out", "{out}"], "latin1.txt is not UTF-8"),
    ("p3-word2vec-missing", phase_03, ["word2vec", "--data", "{missing}", "--out", "{out}"], "nowhere.txt"),
    ("p3-word2vec-window-0", phase_03, ["word2vec", "--window", "0", "--out", "{out}"], "--window must be > 0, got 0"),
    # phase 4
    ("p4-heads", phase_04, ["ladder", "--n-embd", "30", "--n-head", "4", "--out", "{out}"], "30"),
    ("p4-lr-nan", phase_04, ["seq2seq", "--lr", "nan", "--out", "{out}"], "--lr must be a finite number, got nan"),
    # phase 5, training
    ("p5-heads", phase_05_train, [*P5, "--n-head", "3", "--data", "{corpus}", "--out", "{out}"], "n_embd = 16 is not divisible by n_head = 3"),
    ("p5-context-too-long", phase_05_train, [*P5, "--block-size", "100000", "--data", "{corpus}", "--out", "{out}"], "too few for a context of 100000"),
    ("p5-batch-needs-terabytes", phase_05_train, [*P5, "--batch-size", "1000000000", "--data", "{corpus}", "--out", "{out}"], "--batch-size 1000000000 with --block-size 8 needs at least"),
    ("p5-threads-0", phase_05_train, [*P5, "--threads", "0", "--out", "{out}"], "--threads must be >= 1, got 0"),
    ("p5-dropout-nan", phase_05_train, [*P5, "--dropout", "nan", "--out", "{out}"], "--dropout must be a finite number, got nan"),
    ("p5-missing-corpus", phase_05_train, [*P5, "--data", "{missing}", "--out", "{out}"], "nowhere.txt"),
    ("p5-not-utf8", phase_05_train, [*P5, "--data", "{latin1}", "--out", "{out}"], "latin1.txt is not UTF-8"),
    ("p5-out-is-a-file", phase_05_train, [*P5, "--data", "{corpus}", "--out", "{a_file}"], "a_file is a file where a directory"),
    ("p5-resume-nothing", phase_05_train, [*P5, "--data", "{corpus}", "--resume", "--out", "{out}"], "no checkpoint at"),
    ("p5-resume-new-depth", phase_05_train, [*P5, "--data", "{corpus}", "--resume", "--out", "{p5}", "--n-layer", "3"], "cannot change --n-layer 3 (the checkpoint has 2)"),
    ("p5-resume-new-seed", phase_05_train, [*P5, "--data", "{corpus}", "--resume", "--out", "{p5}", "--seed", "7"], "cannot change --seed 7"),
    ("p5-resume-other-text", phase_05_train, [*P5, "--data", "{other}", "--resume", "--out", "{p5}"], "was trained on other data"),
    ("p5-truncated-checkpoint", phase_05_train, [*P5, "--data", "{corpus}", "--resume", "--out", "{run}"], "checkpoint.npz cannot be read", "p5-truncated"),
    ("p5-flipped-checkpoint", phase_05_train, [*P5, "--data", "{corpus}", "--resume", "--out", "{run}"], "checkpoint.npz is corrupted", "p5-flipped"),
    # phase 5, sampling
    ("p5-sample-length", phase_05_sample, ["--out", "{p5}", "--length", "-5"], "--max-new-tokens must be >= 1, got -5"),
    ("p5-sample-temperature", phase_05_sample, ["--out", "{p5}", "--temperature", "nan"], "--temperature must be a finite number >= 0 (0 = greedy), got nan"),
    ("p5-sample-count", phase_05_sample, ["--out", "{p5}", "--num-samples", "0"], "--num-samples must be >= 1, got 0"),
    ("p5-sample-top-k", phase_05_sample, ["--out", "{p5}", "--top-k", "0"], "--top-k must be >= 1, got 0"),
    ("p5-sample-prompt", phase_05_sample, ["--out", "{p5}", "--prompt", "Zebra"], "'Z'"),
    ("p5-sample-no-run", phase_05_sample, ["--out", "{missing}"], "no checkpoint at"),
    # phase 6
    ("p6-seeds-0", phase_06, ["--seeds", "0"], "--seeds must be >= 1, got 0"),
    # phase 7, training
    ("p7-heads", phase_07_train, [*P7, "--n-embd", "30", "--n-head", "4", "--out", "{out}"], "30"),
    ("p7-tokenizer", phase_07_train, [*P7, "--tokenizer", "bpe", "--out", "{out}"], "'bpe'"),
    ("p7-min-lr-nan", phase_07_train, [*P7, "--min-lr", "nan", "--out", "{out}"], "--min-lr must be a finite number, got nan"),
    ("p7-resume-nothing", phase_07_train, [*P7, "--data", "{corpus}", "--resume", "--out", "{out}"], "no checkpoint at"),
    ("p7-resume-new-seed", phase_07_train, [*P7, "--data", "{corpus}", "--resume", "--out", "{p7}", "--seed", "7"], "seed: checkpoint 1337, this run 7"),
    ("p7-resume-new-optimizer", phase_07_train, [*P7, "--data", "{corpus}", "--resume", "--out", "{p7}", "--optimizer", "muon"], "optimizer: checkpoint 'adamw', this run 'muon'"),
    ("p7-resume-other-corpus", phase_07_train, [*P7, "--data", "{other}", "--resume", "--out", "{p7}"], "data: checkpoint"),
    ("p7-flipped-checkpoint", phase_07_train, [*P7, "--data", "{corpus}", "--resume", "--out", "{run}"], "ckpt.pt is corrupted", "p7-flipped"),
    ("p7-truncated-unchecked", phase_07_train, [*P7, "--data", "{corpus}", "--resume", "--out", "{run}"], "ckpt.pt cannot be read", "p7-truncated"),
    # phase 7, sampling
    ("p7-sample-temperature", phase_07_sample, ["--out", "{p7}", "--temperature", "nan"], "--temperature must be a finite number >= 0 (0 = greedy), got nan"),
    ("p7-sample-count", phase_07_sample, ["--out", "{p7}", "--num-samples", "0"], "--num-samples must be >= 1, got 0"),
    ("p7-sample-top-p", phase_07_sample, ["--out", "{p7}", "--top-p", "1.5"], "--top-p must be in (0, 1], got 1.5"),
    ("p7-sample-tokens", phase_07_sample, ["--out", "{p7}", "--max-new-tokens", "-1"], "--max-new-tokens must be >= 1, got -1"),
    ("p7-sample-flipped", phase_07_sample, ["--out", "{run}"], "ckpt.pt is corrupted", "p7-flipped"),
    # phase 8
    ("p8-prepare-missing", phase_08_prepare, ["{missing}", "--out", "{out}"], "no corpus at"),
    ("p8-prepare-short-corpus", phase_08_prepare, ["{corpus}", "--out", "{out}", "--workers", "1"], "--val-tokens 100000000 were filled"),
    ("p8-prepare-shard-0", phase_08_prepare, ["{corpus}", "--out", "{out}", "--shard-tokens", "0", "--workers", "1"], "shard_tokens must be >= 1, got 0"),
    ("p8-train-no-shards", phase_08_train, ["--preset", "tiny", "--data-dir", "{missing}", "--device", "cpu", "--out", "{out}"], "no data directory"),
    ("p8-train-micro-batch-0", phase_08_train, ["--preset", "tiny", "--micro-batch", "0", "--out", "{out}"], "micro_batch must be >= 1, got 0"),
]

BREAKAGES = {
    "p5-truncated": ("p5", "checkpoint.npz", lambda p: (truncate(p), without_checksum(p))),
    "p5-flipped": ("p5", "checkpoint.npz", flip_bytes),
    "p7-flipped": ("p7", "ckpt.pt", flip_bytes),
    "p7-truncated": ("p7", "ckpt.pt", lambda p: (truncate(p), without_checksum(p))),
}


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_a_bad_input_is_one_clear_error(row, files, tmp_path, capsys):
    _, command, template, expected, *breakage = row
    names = {**files, "out": str(tmp_path / "out")}
    if breakage:
        run_name, checkpoint, breaker = BREAKAGES[breakage[0]]
        names["run"] = _copy_run(files, run_name, tmp_path)
        breaker(Path(names["run"]) / checkpoint)
    capsys.readouterr()
    code = command.main([arg.format(**names) for arg in template])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert code == 2, err
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err


def test_the_table_is_wide():
    assert len(ROWS) >= 40 and len({row[0] for row in ROWS}) == len(ROWS)


def test_no_empty_directory_is_left_by_a_failed_prepare(files, tmp_path):
    out = tmp_path / "shards"
    assert phase_08_prepare.main([files["corpus"], "--out", str(out), "--workers", "1"]) == 2
    assert not out.exists()


# ------------------------------------------------------------------- as real processes

PROCESS_ROWS = [
    ("phase_01_nn", ["spirals", "--steps", "-1"], "--steps must be > 0, got -1"),
    ("phase_05_transformer_numpy.sample", ["--out", "{p5}", "--length", "-5"],
     "--max-new-tokens must be >= 1, got -5"),
    ("phase_02_sequence", ["charlm", "--cell", "tree"], "unknown cell 'tree'"),
]


def _python(module: str, args: list[str], env: dict | None = None):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.parametrize("module, template, expected", PROCESS_ROWS,
                         ids=[row[0] for row in PROCESS_ROWS])
def test_the_process_exits_2_with_one_line(module, template, expected, files, tmp_path):
    done = _python(module, [a.format(**files, out=str(tmp_path)) for a in template])
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == f"error: {expected}" or \
        expected in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr


def test_debug_shows_the_traceback_of_a_user_error(files):
    flagged = _python("phase_01_nn", ["spirals", "--steps", "0", "--debug"])
    by_variable = _python("phase_01_nn", ["spirals", "--steps", "0"], {"TFS_DEBUG": "1"})
    for done in (flagged, by_variable):
        assert done.returncode == 2
        assert "Traceback" in done.stderr and "error: --steps must be > 0" in done.stderr


def test_an_internal_error_keeps_its_traceback():
    def broken(argv):
        raise KeyError("a bug of ours")

    with pytest.raises(KeyError):
        run_command(broken, [])
    assert run_command(lambda argv: (_ for _ in ()).throw(UserError("bad")), []) == 2


def test_running_out_of_memory_is_the_users_to_fix(capsys):
    def torch_on_the_cpu(argv):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't "
                           "allocate memory: you tried to allocate 136000000000 bytes.")

    def numpy(argv):
        raise MemoryError("Unable to allocate 127. GiB for an array with shape (1000000000, 17)")

    for command, detail in ((torch_on_the_cpu, "136000000000 bytes"), (numpy, "127. GiB")):
        assert run_command(command, []) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: out of memory:") and detail in err and "--batch-size" in err


# ------------------------------------------------------------ library-level mistakes

def test_a_saved_tokenizer_with_an_invalid_pattern_names_file_and_pattern(tmp_path):
    path = tmp_path / "tok.bpe"
    tokenizer = BPETokenizer.train("abab abab abab", 257)
    tokenizer.save(path)
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace(json.dumps(tokenizer.pattern), json.dumps("(unclosed"), 1),
                    encoding="utf-8")
    with pytest.raises(ValueError, match=r"tok.bpe is not a valid tokenizer file: the split "
                                         r"pattern '\(unclosed' is not a valid regular"):
        BPETokenizer.load(path)


def test_bpe_says_when_the_vocabulary_comes_out_smaller():
    with pytest.warns(SmallerVocabularyWarning, match="asked for a vocabulary of 300 ids, got 258"):
        BPETokenizer.train("abab", 300)


def test_a_shard_refuses_float_ids(tmp_path):
    with pytest.raises(ValueError, match=r"must be integers, got an array of float64 "
                                         r"\(first values \[1.5, 2.7\]\)"):
        write_shard(tmp_path / "x.bin", [1.5, 2.7])
    assert not (tmp_path / "x.bin").exists()


# ------------------------------------------------------------------------- faults

def _final_arrays(path: Path) -> dict:
    arrays, _ = load_checkpoint(path)
    return arrays


def _rows(path: Path) -> list[dict]:
    """Metrics rows without the wall-clock fields, which differ between runs."""
    return [{k: v for k, v in json.loads(line).items()
             if k not in ("seconds", "tokens_per_s", "seconds_per_step")}
            for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that makes the NaN
def test_phase_5_a_diverging_run_never_overwrites_the_last_good_checkpoint(files, tmp_path,
                                                                           capsys):
    out = tmp_path / "diverged"
    # four sane steps and their checkpoint, then a learning rate of 1e6: its first step makes
    # the weights about 1e6 (finite, useless), and a later one overflows before the next
    # evaluation (at step 50) could save that state
    assert phase_05_train.main([*P5, "--data", files["corpus"], "--max-iters", "4",
                                "--eval-interval", "2", "--out", str(out)]) == 0
    code = phase_05_train.main([*P5, "--data", files["corpus"], "--max-iters", "60",
                                "--lr", "1e6", "--min-lr", "1e5", "--eval-interval", "50",
                                "--resume", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "not finite at step" in err and "is kept" in err
    arrays, meta = load_checkpoint(out / "checkpoint.npz")
    assert all(np.isfinite(a).all() for a in arrays.values()) and meta["step"] == 4
    # resuming at a sane learning rate trains on from the good state
    assert phase_05_train.main([*P5, "--data", files["corpus"], "--max-iters", str(meta["step"] + 2),
                                "--lr", "1e-3", "--min-lr", "1e-4", "--eval-interval", "1",
                                "--resume", "--out", str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["val_loss"] < 10


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_phase_5_says_so_when_no_checkpoint_was_ever_written(files, tmp_path, capsys):
    out = tmp_path / "early"
    code = phase_05_train.main([*P5, "--data", files["corpus"], "--max-iters", "60", "--lr", "1e9",
                                "--min-lr", "1e9", "--eval-interval", "50", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "no checkpoint was written" in err and "is kept" not in err


def _phase_5(files, out, *extra):
    return phase_05_train.main([*P5, "--data", files["corpus"], "--max-iters", "6",
                                "--eval-interval", "2", "--out", str(out), *extra])


def test_phase_5_full_disk_keeps_the_checkpoint_and_resumes_to_the_bit(files, tmp_path,
                                                                        monkeypatch, capsys):
    assert _phase_5(files, tmp_path / "whole") == 0
    real_fsync, calls = os.fsync, []

    def full_at_the_third_checkpoint(descriptor):
        calls.append(descriptor)
        if len(calls) == 7:  # three a checkpoint (file, checksum, directory): the third's file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_at_the_third_checkpoint)
    broken = tmp_path / "broken"
    assert _phase_5(files, broken) == 2
    assert "no space left on the device while writing" in capsys.readouterr().err
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not list(broken.glob("*.tmp"))
    assert load_checkpoint(broken / "checkpoint.npz")[1]["step"] == 4
    assert _phase_5(files, broken, "--resume") == 0
    whole, resumed = _final_arrays(tmp_path / "whole" / "checkpoint.npz"), \
        _final_arrays(broken / "checkpoint.npz")
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole)
    assert _rows(broken / "metrics.jsonl") == _rows(tmp_path / "whole" / "metrics.jsonl")


def _phase_2(files, out, steps, *extra):
    return phase_02.main(["charlm", "--data", files["corpus"], "--steps", str(steps), *P2,
                          "--out", str(out), *extra])


def _back_to_previous(run: Path, name: str) -> None:
    """The run as a kill -9 during its last checkpoint write leaves it: the checkpoint before,
    a half-written temporary, and the metrics logged since (the last evaluation's row)."""
    checkpoint = run / name
    os.replace(previous_path(checkpoint), checkpoint)
    os.replace(str(previous_path(checkpoint)) + ".sha256", str(checkpoint) + ".sha256")
    Path(str(checkpoint) + ".tmp").write_bytes(b"PK\x03\x04 half a zip")


def test_phase_2_killed_write_and_duplicated_rows(files, tmp_path):
    assert _phase_2(files, tmp_path / "whole", 6) == 0
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    _back_to_previous(cut, "checkpoint.npz")
    assert load_checkpoint(cut / "checkpoint.npz")[1]["step"] == 4
    assert _phase_2(files, cut, 6, "--resume") == 0
    assert not (cut / "checkpoint.npz.tmp").exists()
    whole, resumed = _final_arrays(tmp_path / "whole" / "checkpoint.npz"), \
        _final_arrays(cut / "checkpoint.npz")
    assert all(np.array_equal(whole[k], resumed[k]) for k in whole)
    steps = [row["step"] for row in _rows(cut / "metrics.jsonl")]
    assert steps == [2, 4, 6]


def _phase_7(files, out, *extra):
    return phase_07_train.main([*P7, "--data", files["corpus"], "--max-iters", "6",
                                "--eval-interval", "2", "--out", str(out), *extra])


def test_phase_7_full_disk_is_a_clear_error_not_torch_internals(files, tmp_path, monkeypatch,
                                                                 capsys):
    real_fsync, calls = os.fsync, []

    def full_at_the_second_checkpoint(descriptor):
        calls.append(descriptor)
        if len(calls) == 4:  # three a checkpoint (file, checksum, directory): the second's file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_at_the_second_checkpoint)
    out = tmp_path / "full"
    assert _phase_7(files, out) == 2
    err = capsys.readouterr().err
    assert "no space left on the device while writing" in err and "enforce fail" not in err
    assert not list(out.glob("*.tmp"))
    assert read_checkpoint(out / "ckpt.pt")["step"] == 0


def test_phase_7_corrupted_checkpoint_offers_the_previous_and_it_resumes_to_the_bit(
        files, tmp_path, capsys):
    assert _phase_7(files, tmp_path / "whole") == 0
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    flip_bytes(cut / "ckpt.pt")
    assert _phase_7(files, cut, "--resume") == 2
    err = capsys.readouterr().err
    previous = previous_path(cut / "ckpt.pt")
    assert f"kept at {previous}" in err
    with pytest.raises(CheckpointError):
        read_checkpoint(cut / "ckpt.pt")
    os.replace(previous, cut / "ckpt.pt")
    os.replace(str(previous) + ".sha256", str(cut / "ckpt.pt") + ".sha256")
    assert read_checkpoint(cut / "ckpt.pt")["step"] == 4
    assert _phase_7(files, cut, "--resume") == 0
    whole = read_checkpoint(tmp_path / "whole" / "ckpt.pt")["model"]
    resumed = read_checkpoint(cut / "ckpt.pt")["model"]
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert [r for r in _rows(cut / "metrics.jsonl") if "val_loss" in r] == \
        [r for r in _rows(tmp_path / "whole" / "metrics.jsonl") if "val_loss" in r]


def test_phase_7_resume_on_another_text_of_the_same_length(tmp_path, capsys):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(make_text(1), encoding="utf-8")
    args = [*P7, "--data", str(corpus), "--max-iters", "2", "--eval-interval", "2",
            "--out", str(tmp_path / "run")]
    assert phase_07_train.main(args) == 0
    text = make_text(1)
    corpus.write_text(text[::-1], encoding="utf-8")  # same characters, same length
    assert phase_07_train.main([*args, "--max-iters", "4", "--resume"]) == 2
    assert "was trained on other data" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the overflow that makes the NaN
def test_phase_2_a_diverging_charlm_is_an_error_that_says_what_is_kept(files, tmp_path, capsys):
    code = phase_02.main(["charlm", "--data", files["corpus"], "--steps", "40", *P2,
                          "--lr", "1e38", "--min-lr", "1e37", "--clip", "1e9",
                          "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and "error: training stopped: " in err, err
    assert "is kept" in err or "no checkpoint was written" in err
    if (tmp_path / "run" / "checkpoint.npz").exists():
        arrays, _ = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
        assert all(np.isfinite(a).all() for a in arrays.values())
