import json

import pytest
import torch

from phase_09_modern.models import kv_bench
from phase_09_modern.models.llama import Llama, LlamaConfig


def test_the_reference_twin_has_our_weights():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_kv_head=1,
                              n_embd=16, d_ff=24)).eval()
    hf = kv_bench.hf_twin(model)
    ids = torch.randint(0, 20, (2, 12))
    with torch.no_grad():
        torch.testing.assert_close(model(ids)[0], hf(ids).logits, rtol=0, atol=1e-5)


def test_the_bench_writes_its_table_json_and_plot(tmp_path, capsys):
    assert kv_bench.main(["--lengths", "4", "2", "--repeats", "1", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "| 2 |" in printed and "| 4 |" in printed
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["new_tokens"] for r in rows] == [2, 4]
    assert all(r["cache_tokens_per_s"] > 0 and r["no_cache_tokens_per_s"] > 0 for r in rows)
    assert (tmp_path / "kv_bench.png").stat().st_size > 0


def test_a_length_past_the_context_is_refused(capsys):
    assert kv_bench.main(["--lengths", "5000"]) == 2
    assert "lengths must be in [1, 1008]" in capsys.readouterr().err
