"""The run configuration of phase 8's trainer and its presets: GPT-2 Small, and a tiny one.

One flat frozen dataclass, so every field is a command-line option (phase 1's
``add_config_options``). The batch is given in tokens, as in GPT-3's Table 2.1 (0.5M for the
125M model): the number of micro-steps follows from the micro-batch, the context and the number
of processes, and must come out whole.
Notes: ``phase_08_train_124m/notes/02_the_124m_recipe.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from phase_01_nn.config_options import check_config, config_from_dict
from phase_07_gpt.model import GPTConfig
from phase_07_gpt.muon import check_optimizer_choice

MODEL_FIELDS = ("vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias")


@dataclass(frozen=True)
class RunConfig:
    # data: a directory of shards written by phase_08_train_124m.prepare
    data_dir: str = "data/fineweb-edu"
    # model: GPT-2 Small; vocab 50257 padded by the model to 50304 rows (a multiple of 64)
    vocab_size: int = 50257
    block_size: int = 1024
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True
    # batch: total_batch_tokens per optimizer step = micro_batch x block_size x processes x accum
    total_batch_tokens: int = 524_288
    micro_batch: int = 64
    # optimisation
    max_iters: int = 19_073
    lr: float = 6e-4
    min_lr: float = 6e-5
    warmup_iters: int = 715
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    optimizer: str = "adamw"  # or "muon" (phase 7's: Muon for the blocks' matrices)
    muon_lr: float = 0.02
    # evaluation and records
    eval_interval: int = 250  # val loss, HellaSwag and a checkpoint every this many steps
    eval_iters: int = 80  # val micro-batches per evaluation, shared by the processes
    hellaswag: str = ""  # hellaswag_val.jsonl; "" looks in $TFS_DATA_DIR/hellaswag/
    hellaswag_limit: int = 0  # examples scored per evaluation; 0 = all
    sample_interval: int = 250  # 0 = no samples
    sample_tokens: int = 32
    save_checkpoints: bool = True
    seed: int = 1337
    # runtime
    device: str = "auto"
    dtype: str = "auto"
    compile: bool = False
    threads: int = 0
    peak_tflops: float = 0.0  # the GPU's dense bf16 peak, for MFU; 0 = phase 8's table

    def __post_init__(self) -> None:
        check_config(self)
        self.model_config()
        check_optimizer_choice(self.optimizer, self.muon_lr)
        for name in ("total_batch_tokens", "micro_batch", "max_iters", "eval_interval",
                     "eval_iters", "sample_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("warmup_iters", "weight_decay", "grad_clip", "threads", "sample_interval",
                     "hellaswag_limit", "peak_tflops"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.min_lr <= self.lr:
            raise ValueError(f"need 0 < min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        for name in ("beta1", "beta2"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    def model_config(self) -> GPTConfig:
        return GPTConfig(pre_ln=True, tie_weights=True, positions="learned", gelu="tanh",
                         **{name: getattr(self, name) for name in MODEL_FIELDS})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> RunConfig:
        return config_from_dict(cls, values)


def grad_accum_steps(total_batch_tokens: int, micro_batch: int, block_size: int,
                     world_size: int) -> int:
    """Micro-steps per optimizer step, so that the job's micro-batches add up to exactly
    ``total_batch_tokens``; an error that lists the micro-batches that would work otherwise."""
    per_micro_step = micro_batch * block_size * world_size
    if total_batch_tokens % per_micro_step:
        rows = total_batch_tokens // (block_size * world_size)
        fits = [b for b in range(1, min(rows, 256) + 1)
                if total_batch_tokens % (b * block_size * world_size) == 0]
        raise ValueError(
            f"total_batch_tokens {total_batch_tokens} is not divisible by micro_batch "
            f"{micro_batch} x block_size {block_size} x {world_size} processes = "
            f"{per_micro_step} tokens per micro-step"
            + (f"; micro_batch values that divide it: {fits}" if fits else
               "; change total_batch_tokens or block_size"))
    return total_batch_tokens // per_micro_step


PRESETS: dict[str, RunConfig] = {
    # GPT-2 Small (Radford et al. 2019) trained with GPT-3's 125M recipe (Brown et al. 2020,
    # Table 2.1: 0.5M-token batches, lr 6e-4, 375M warmup tokens) as nanoGPT and llm.c run it on
    # 10B tokens of FineWeb-Edu: 19,073 steps x 524,288 tokens.
    "gpt2-124m": RunConfig(compile=True),
    # Seconds on a CPU: two layers, a 64-token context, the GPT-2 vocabulary; for the smoke run
    # on Tiny Shakespeare and the command lines in the notes.
    "tiny": RunConfig(data_dir="data/shakespeare-gpt2", block_size=64, n_layer=2, n_head=2,
                      n_embd=64, total_batch_tokens=512, micro_batch=4, max_iters=40, lr=1e-3,
                      min_lr=1e-4, warmup_iters=5, eval_interval=10, eval_iters=4,
                      sample_interval=20, sample_tokens=24, device="cpu", threads=1),
}
