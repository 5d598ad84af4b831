"""Training settings: one validated dataclass, the `[train]` section of studio.toml.

Defaults are chosen for a 2-core CPU and the packaged all-MiniLM-L6-v2: LR-initialised head + LoRA r=16 on
every linear layer of the top two transformer blocks, lr 1e-3, batch 32, linear decay (bench/train.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.config import ConfigSection, require

#: How the encoder is adapted. "lora" trains low-rank adapters + the head; "full" trains every weight
#: (kept for the benchmark's comparison).
METHODS = ("lora", "full")


@dataclass
class TrainConfig(ConfigSection):
    """Everything that changes what a training run produces. Stored verbatim in each run's config.json."""

    SECTION = "train"
    base_model: str = ""  # "" = the packaged all-MiniLM-L6-v2 (studio.models.resolve_model_path)
    method: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # 0 lets peft skip a copy of every adapted input (0.1: as accurate, slower)
    # "dense" = the attention output, intermediate and output projections of a BERT-style block.
    target_modules: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    # 0 = adapters in every layer; N > 0 = only the top N, so no backward pass runs below them (and the frozen
    # blocks run without dropout). On banking77 (full train split, 1 epoch, max_length 64, 2-core CPU),
    # r=16 on every linear of the top 2 blocks is about as accurate as r=8 query/value in every layer and
    # much faster per example than either that or full fine-tuning (r=8 there: a little less accurate and
    # slower); measured in bench/train.py, figures in the README's Benchmarks.
    lora_layers: int = 2
    max_length: int = 128
    epochs: float = 2.0
    batch_size: int = 32
    eval_batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    seed: int = 42
    early_stopping_patience: int = 2  # evaluations without a macro-F1 gain before stopping
    evals_per_epoch: int = 1
    head_init: str = "logreg"  # "logreg" = fit the fast head first and start from it; "random" = stock init
    head_c: float = 10.0  # inverse regularisation of the fast head (embeddings have norm 1, so C must be large)
    max_steps: int = -1  # > 0 caps optimisation steps (tests, quick looks); -1 = epochs decide
    report_to: str = "none"  # experiment tracking: none, tensorboard, mlflow, wandb (training/tracking.py)

    def __post_init__(self) -> None:
        s = self.SECTION
        require(self.method in METHODS, s, "method", self.method, f"one of {', '.join(METHODS)}")
        require(self.head_init in ("logreg", "random"), s, "head_init", self.head_init, "'logreg' or 'random'")
        require(self.lora_r > 0, s, "lora_r", self.lora_r, "a positive integer (8 is a good start)")
        require(self.lora_alpha > 0, s, "lora_alpha", self.lora_alpha, "a positive integer (usually 2 x lora_r)")
        require(0.0 <= self.lora_dropout < 1.0, s, "lora_dropout", self.lora_dropout, "a number in [0, 1)")
        require(isinstance(self.target_modules, list) and len(self.target_modules) > 0
                and all(isinstance(m, str) and m for m in self.target_modules),
                s, "target_modules", self.target_modules, "a non-empty list of module names, e.g. query,value")
        require(isinstance(self.lora_layers, int) and self.lora_layers >= 0, s, "lora_layers", self.lora_layers,
                "0 (all layers) or a positive number of top layers, e.g. 2")
        require(8 <= self.max_length <= 8192, s, "max_length", self.max_length, "an integer in [8, 8192]")
        require(self.epochs > 0, s, "epochs", self.epochs, "a positive number")
        require(self.batch_size > 0, s, "batch_size", self.batch_size, "a positive integer")
        require(self.eval_batch_size > 0, s, "eval_batch_size", self.eval_batch_size, "a positive integer")
        require(0 < self.learning_rate < 1, s, "learning_rate", self.learning_rate, "a number in (0, 1)")
        require(self.weight_decay >= 0, s, "weight_decay", self.weight_decay, "0 or more")
        require(0 <= self.warmup_ratio < 1, s, "warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        require(self.early_stopping_patience >= 0, s, "early_stopping_patience", self.early_stopping_patience,
                "0 (off) or a positive integer")
        require(self.evals_per_epoch >= 1, s, "evals_per_epoch", self.evals_per_epoch, "1 or more")
        require(self.head_c > 0, s, "head_c", self.head_c, "a positive number")
        require(self.max_steps == -1 or self.max_steps > 0, s, "max_steps", self.max_steps,
                "-1 or a positive integer")
        from training.tracking import REPORTERS

        require(self.report_to in REPORTERS, s, "report_to", self.report_to, f"one of {', '.join(REPORTERS)}")
