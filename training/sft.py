"""Supervised fine-tuning, the model side of the "generation" task kind: LoRA SFT of a causal LM with TRL.

Each row becomes a conversational prompt-completion example: prompt = the chat before the assistant's answer
(an optional system turn and the user's message), completion = the assistant's answer. TRL's SFTTrainer applies
the model's chat template to both and puts the loss on the completion tokens only (its end-of-turn token
included, so the model learns to stop). LoRA (peft, TaskType.CAUSAL_LM) adapts `[sft] target_modules` of every
block; the base weights stay frozen (4-bit with `qlora` on a CUDA GPU). With a validation split, the validation
loss picks the best checkpoint and stops the run early. Precision: bf16 on a GPU that has it, else fp32.

After training, the fine-tuned model and its base (the same weights, adapter off) answer the same test prompts
(training/gen_eval.py). The run folder gets the adapter, the tokenizer, config.json, metrics.json,
examples.parquet and the usual data.json / labels.json / README.md (training/artefacts.py).

metrics.json (read it through training.metrics.GenerationMetrics): "task": "generation"; "base" and "fine_tuned"
(rouge_l, chrf, embedding_similarity, perplexity, mean_logprob, response_words, truncated,
generation_tokens_per_s); "per_group" {group: {"n", "base", "fine_tuned"}}; "n_eval_prompts", "eval_split",
"reference_words", "generation_tokens_per_s" (the fine-tuned model's), "eval_time_s"; training: "curve" (loss and
validation loss / token accuracy points), "best_validation_loss", "global_step", "world_size" (processes that
trained together), "epochs_done", "train_time_s",
"train_tokens" (prompt + answer tokens seen, padding excluded), "train_tokens_per_s" (over the optimisation steps
alone), "train_tokens_per_s_wall" (over the whole training, validation included), "train_examples_per_s",
"trainable_parameters", "total_parameters", "adapter_size_bytes", "device", "dtype", "threads", "total_time_s";
"summary" (what the run list shows: the fine-tuned figures, base_rouge_l, validation_loss, split, task).
"""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from studio.errors import ConfigError, DataError
from studio.types import ProgressFn
from training.data import CuratedData
from training.distributed import cpu_ranks, is_main_process
from training.sft_config import SFTConfig
from training.tracking import check_reporter, reporter_environment
from training.train import ShouldStop, TrainingCancelled, _curve, _make_callbacks

log = logging.getLogger(__name__)

#: The eval_* figures each validation point of the curve keeps (TRL logs the token accuracy of the completions).
CURVE_METRICS = ("loss", "mean_token_accuracy")
def conversational_examples(curated: CuratedData, split: str) -> list[dict[str, Any]]:
    """A split as TRL's conversational prompt-completion rows: {"prompt": [turns before the answer],
    "completion": [the assistant's answer]}."""
    return [{"prompt": chat[:-1], "completion": chat[-1:]} for chat in curated.messages(split)]


@contextmanager
def quiet_datasets() -> Iterator[None]:
    """No `datasets` progress bars while TRL tokenises (the job log and the CLI show the run's own progress)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _check_target_modules(model: Any, target_modules: Sequence[str]) -> None:
    from torch import nn

    available = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)}
                       - {"lm_head"})
    missing = [m for m in target_modules if m not in available]
    if missing:
        raise ConfigError(f"[sft] target_modules = {list(target_modules)!r}: {missing} match no Linear layer of this "
                          "model.", hint=f"pick from the model's Linear layers: {', '.join(available)}")


def _step_timer() -> Any:
    """A callback timing the optimisation steps alone (no evaluation or checkpoint saving)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.seconds, self._t0 = 0.0, 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self._t0 = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.seconds += time.perf_counter() - self._t0

    return StepTimer()


def sft_arguments(cfg: SFTConfig, output_dir: Path, *, has_validation: bool, run_id: str) -> Any:
    """TRL's SFTConfig (TrainingArguments + data options) for one run."""
    from trl import SFTConfig as TRLConfig

    from training.llm import device_and_dtype

    device, dtype = device_and_dtype()
    if has_validation:
        ratio = min(0.999, 1.0 / (cfg.epochs * cfg.evals_per_epoch))  # a float < 1 = a share of all steps
        eval_kwargs: dict[str, Any] = {"eval_strategy": "steps", "save_strategy": "steps", "eval_steps": ratio,
                                       "save_steps": ratio, "load_best_model_at_end": True,
                                       "metric_for_best_model": "eval_loss", "greater_is_better": False}
    else:
        eval_kwargs = {"eval_strategy": "no", "save_strategy": "no"}
    import torch

    return TRLConfig(
        output_dir=str(output_dir), run_name=run_id,
        per_device_train_batch_size=cfg.batch_size, per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
        lr_scheduler_type="linear", warmup_steps=cfg.warmup_ratio, weight_decay=0.0,
        logging_steps=0.02, save_total_limit=1, save_only_model=True,
        report_to=cfg.report_to, seed=cfg.seed, data_seed=cfg.seed, disable_tqdm=True,
        bf16=device == "cuda" and dtype == torch.bfloat16, fp16=device == "cuda" and dtype == torch.float16,
        # TRL turns checkpointing on by default; recomputing activations costs about a third more time on a CPU.
        activation_checkpointing=cfg.activation_checkpointing,
        prediction_loss_only=True,  # validation needs the loss alone: never gather (N, L, vocab) logits
        max_length=cfg.max_length, completion_only_loss=True, packing=False,
        train_sampling_strategy="group_by_length",  # answers run from 20 to 380 words: less padding per batch
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0, dataloader_pin_memory=device == "cuda",
        use_cpu=cpu_ranks(),  # several ranks without CUDA: join them over gloo (training/distributed.py)
        **eval_kwargs,
    )


def check_lengths(tokenizer: Any, examples: Sequence[dict[str, Any]], task_ids: Sequence[Any], *,
                  max_length: int, split: str) -> dict[str, int]:
    """Token counts of each training example under the chat template, against `max_length`.

    A prompt that alone reaches max_length leaves no room for its answer: the run is refused, naming the tasks
    (the validation report lists long prompts; exclude them on the Quality page, or raise [sft] max_length).
    An answer cut at max_length is kept (the model learns its beginning, not to stop there) and counted:
    returns {"examples", "answers_cut", "longest_tokens"} for metrics.json."""
    too_long, cut, longest, answers = [], 0, 0, []
    for example, task_id in zip(examples, task_ids):
        prompt = tokenizer.apply_chat_template(example["prompt"], tokenize=True, add_generation_prompt=True)
        whole = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=True)
        # transformers 5 returns a BatchEncoding (a mapping, not a dict) here; older versions a list of ids
        n_prompt = len(prompt["input_ids"] if hasattr(prompt, "keys") else prompt)
        n_whole = len(whole["input_ids"] if hasattr(whole, "keys") else whole)
        longest = max(longest, n_whole)
        answers.append(n_whole - n_prompt)
        if n_prompt >= max_length:
            too_long.append(f"{task_id} ({n_prompt} tokens)")
        elif n_whole > max_length:
            cut += 1
    if too_long:
        raise DataError(f"{len(too_long)} {split} prompt(s) are as long as the model's context ([sft] max_length = "
                        f"{max_length} tokens) or longer, so no answer would be learned: task "
                        f"{', '.join(too_long[:5])}{' …' if len(too_long) > 5 else ''}.",
                        hint="exclude them on the Quality page (the validation report lists long prompts), or raise "
                             "[sft] max_length")
    if cut:
        log.warning("%d of %d %s answers are longer than max_length = %d tokens and are cut there", cut,
                    len(examples), split, max_length)
    p95 = int(np.percentile(answers, 95)) if answers else 0
    return {"examples": len(examples), "answers_cut": cut, "longest_tokens": longest, "answer_tokens_p95": p95}


def answer_budget(cfg: SFTConfig, lengths: dict[str, int]) -> int:
    """Tokens per generated answer: [sft] max_new_tokens, or with 0 the training answers' 95th percentile length
    (at least 32, at most max_length)."""
    if cfg.max_new_tokens > 0:
        return cfg.max_new_tokens
    return int(min(cfg.max_length, max(32, lengths.get("answer_tokens_p95", 0))))


def train_sft(work: Path, curated: CuratedData, cfg: SFTConfig, model_path: str, *, progress: ProgressFn | None,
              should_stop: ShouldStop | None, callbacks: Sequence[Any], run_id: str,
              on_phase: Callable[[str], None] | None = None) -> dict[str, Any]:
    """LoRA SFT of `model_path` on a generation data set, evaluated against its base; writes the run into `work`
    (the registry's temporary folder) and returns metrics.json's content.

    progress(done_steps, total_steps) while training; should_stop() is polled every step and between generation
    batches and ends the run as TrainingCancelled. callbacks: extra TrainerCallbacks (the job's status writer).
    on_phase(text): what the run is doing after training ("answering with the base model (8/40)", ...).
    """
    import torch
    from datasets import Dataset
    from peft import LoraConfig, TaskType, prepare_model_for_kbit_training
    from transformers import EarlyStoppingCallback, PrinterCallback
    from trl import SFTTrainer

    from training.lora import count_parameters
    from training.llm import check_qlora, device_and_dtype, load_causal_lm, load_tokenizer

    def stop_requested() -> bool:
        return should_stop is not None and should_stop()

    started = time.perf_counter()
    check_reporter(cfg.report_to)
    if cfg.qlora:
        check_qlora()
    torch.manual_seed(cfg.seed)
    has_val, has_test = len(curated.validation) > 0, len(curated.test) > 0
    tokenizer = load_tokenizer(model_path)
    model = load_causal_lm(model_path, qlora=cfg.qlora)
    if cfg.qlora:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    _check_target_modules(model, cfg.target_modules)
    n_layers = int(model.config.num_hidden_layers)
    top = range(max(0, n_layers - cfg.lora_layers), n_layers) if cfg.lora_layers else None
    peft_config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
                             lora_dropout=cfg.lora_dropout, target_modules=list(cfg.target_modules),
                             layers_to_transform=list(top) if top is not None else None)
    train_examples = conversational_examples(curated, "train")
    lengths = check_lengths(tokenizer, train_examples, curated.split("train")["task_id"].tolist()
                            if "task_id" in curated.split("train").columns else range(len(train_examples)),
                            max_length=cfg.max_length, split="train")
    train_ds = Dataset.from_list(train_examples)
    val_ds = Dataset.from_list(conversational_examples(curated, "validation")) if has_val else None
    timer = _step_timer()
    all_callbacks = [_make_callbacks(progress, should_stop), timer, *callbacks]
    if has_val and cfg.early_stopping_patience > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    logging.getLogger("transformers.trainer").setLevel(logging.ERROR)
    with reporter_environment(cfg.report_to, work, run_id), warnings.catch_warnings():
        # peft asks the model is_gradient_checkpointing, renamed in transformers 5: not ours to fix.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        with quiet_datasets():
            trainer = SFTTrainer(model=model, args=sft_arguments(cfg, work / "checkpoints", has_validation=has_val,
                                                                 run_id=run_id),
                                 train_dataset=train_ds, eval_dataset=val_ds, processing_class=tokenizer,
                                 peft_config=peft_config, callbacks=all_callbacks)
        trainer.remove_callback(PrinterCallback)  # progress goes to `progress` and the job status, not stdout
        trainable, total = count_parameters(trainer.model)
        log.info("run %s: LoRA SFT of %s, %d of %d parameters trainable", run_id, model_path, trainable, total)
        t0 = time.perf_counter()
        output = trainer.train()
        train_time = time.perf_counter() - t0
    if stop_requested():
        raise TrainingCancelled(f"Run {run_id} was cancelled at step {trainer.state.global_step}.")

    tokens_seen = int(trainer.state.num_input_tokens_seen)
    device, dtype = device_and_dtype()
    metrics: dict[str, Any] = {
        "task": "generation",
        "curve": _curve(trainer.state.log_history, metrics=CURVE_METRICS),
        "best_validation_loss": trainer.state.best_metric,
        "global_step": trainer.state.global_step,
        "world_size": trainer.args.world_size,  # processes that trained together (training/distributed.py)
        "epochs_done": trainer.state.epoch,
        "train_time_s": round(train_time, 2),
        "train_tokens": tokens_seen,
        "train_tokens_per_s": round(tokens_seen / timer.seconds, 2) if timer.seconds else 0.0,
        "train_tokens_per_s_wall": round(tokens_seen / train_time, 2) if train_time else 0.0,
        "train_examples_per_s": round(output.metrics.get("train_samples_per_second", 0.0), 2),
        "train_lengths": lengths,  # examples, answers_cut (at max_length), longest_tokens, answer_tokens_p95
        "max_new_tokens": answer_budget(cfg, lengths),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "device": device, "dtype": str(dtype).replace("torch.", ""), "threads": torch.get_num_threads(),
    }
    examples = None
    eval_split = "test" if has_test else ("validation" if has_val else "")
    if eval_split and cfg.eval_prompts > 0 and is_main_process():  # only rank 0's figures are written
        metrics["eval_split"] = eval_split
        from training.gen_eval import choose_eval_rows, evaluate_generation
        from training.generate import Generator

        frame = curated.split(eval_split)
        groups = curated.column(eval_split, "group") or [""] * len(frame)
        rows = choose_eval_rows(groups, cfg.eval_prompts, seed=cfg.seed)
        chats = curated.messages(eval_split)
        ids = frame["task_id"].tolist() if "task_id" in frame.columns else list(range(len(frame)))
        generator = Generator(trainer.model, tokenizer, max_length=cfg.max_length)
        scores, examples = evaluate_generation(
            generator, [chats[i][:-1] for i in rows], [chats[i][-1]["content"] for i in rows],
            groups=[groups[i] for i in rows], task_ids=[ids[i] for i in rows],
            max_new_tokens=answer_budget(cfg, lengths),
            batch_size=cfg.generation_batch_size, should_stop=should_stop, on_phase=on_phase)
        metrics.update(scores)
    metrics["summary"] = summary(metrics, eval_split)
    metrics["total_time_s"] = round(time.perf_counter() - started, 2)
    if is_main_process():
        from training.artefacts import write_generation_run

        if on_phase is not None:
            on_phase("saving the run")
        write_generation_run(work, run_id=run_id, curated=curated, cfg=cfg, model_path=model_path,
                             model=trainer.model, tokenizer=tokenizer, metrics=metrics, examples=examples)
    return metrics


def summary(metrics: dict[str, Any], split: str) -> dict[str, Any]:
    """The headline figures the run list shows (RunInfo.metrics): the fine-tuned model's, with the base model's
    ROUGE-L beside them."""
    tuned, base = metrics.get("fine_tuned", {}), metrics.get("base", {})
    out: dict[str, Any] = {"task": "generation", "split": split, "selected": "lora",
                           "n_eval_prompts": metrics.get("n_eval_prompts", 0)}
    for key in ("rouge_l", "chrf", "embedding_similarity", "perplexity"):
        if key in tuned:
            out[key] = tuned[key]
    if "rouge_l" in base:
        out["base_rouge_l"] = base["rouge_l"]
    if metrics.get("best_validation_loss") is not None:
        out["validation_loss"] = metrics["best_validation_loss"]
    return out
