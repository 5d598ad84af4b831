"""One training run, end to end: fast head -> LR-initialised classifier -> LoRA fine-tuning -> run folder.

`run_training` is what the background job, the CLI (`studio train`) and the benchmark call. It never leaves
a finished-looking run behind on failure or cancel: everything is written to `<runs_root>/.tmp-<id>` and
renamed into place at the very end (see training/runs.py).
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from studio.errors import ConfigError, StudioError, TrainingError
from studio.models import resolve_model_path
from studio.types import ProgressFn
from training.artefacts import MODELS_DIR, predictions_frame
from training.config import TrainConfig
from training.data import CuratedData, load_curated, validate_curated
from training.distributed import agree, check_launch, cpu_ranks, is_main_process, replica_info
from training.runs import RunInfo, RunRegistry
from training.sft_config import SFTConfig

log = logging.getLogger(__name__)

ShouldStop = Callable[[], bool]


class TrainingCancelled(TrainingError):
    """The run was stopped on request (cancel button, cancel flag, SIGTERM); nothing was registered."""


def _tokenized(tokenizer: Any, texts: Sequence[str], targets: np.ndarray, max_length: int) -> Any:
    from datasets import Dataset

    encoded = dict(tokenizer(list(texts), truncation=True, max_length=max_length))
    encoded["labels"] = targets.tolist()
    return Dataset.from_dict(encoded)


def _make_callbacks(progress: ProgressFn | None, should_stop: ShouldStop | None) -> Any:
    from transformers import TrainerCallback

    class _ProgressAndStop(TrainerCallback):
        """Reports steps to `progress` and turns `should_stop()` into a clean Trainer stop."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if progress is not None:
                progress(state.global_step, state.max_steps)
            if should_stop is not None and should_stop():
                control.should_training_stop = True
                control.should_save = False  # a cancelled run keeps nothing

    return _ProgressAndStop()


def tqdm_progress(desc: str = "training") -> ProgressFn:
    """A ProgressFn drawing a tqdm bar (for the CLI): `run_training(..., progress=tqdm_progress())`."""
    from tqdm.auto import tqdm

    bar = tqdm(desc=desc, unit="step", total=0)

    def update(done: int, total: int) -> None:
        if total and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)
        if total and done >= total:
            bar.close()

    return update


#: The eval_* figures each eval point of a curve keeps (without the prefix); the first marks an eval entry.
CURVE_METRICS = ("macro_f1", "accuracy")


def curve_points(entry: dict[str, Any], *, metrics: Sequence[str] | None = CURVE_METRICS
                 ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One Trainer log entry (a `state.log_history` item: the logged figures plus step and epoch) ->
    (training-loss point or None, eval point or None), each with step/epoch; `_curve` and the job status
    callback (training/jobs.py) read entries only through this. metrics=None keeps every eval figure the entry
    has (the job status does not know the task kind's metrics: entity F1 for spans, macro-F1 for classes)."""
    where = {"step": entry.get("step"), "epoch": entry.get("epoch")}
    loss = {**where, "loss": entry["loss"]} if "loss" in entry else None
    evals = None
    if metrics is None:
        skip = {"eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second"}
        found = [k[len("eval_"):] for k in entry if k.startswith("eval_") and k not in skip]
        if found:
            evals = {**where, **{m: entry[f"eval_{m}"] for m in found}, "loss": entry.get("eval_loss")}
    elif f"eval_{metrics[0]}" in entry:
        evals = {**where, **{m: entry.get(f"eval_{m}") for m in metrics}, "loss": entry.get("eval_loss")}
    return loss, evals


def _curve(log_history: list[dict[str, Any]], *,
           metrics: Sequence[str] = CURVE_METRICS) -> dict[str, list[dict[str, float]]]:
    """Trainer's log history -> {"loss": [...], "eval": [...]} with step/epoch on every point.

    metrics: the eval_* figures each eval point keeps (without the prefix); the first marks an eval entry."""
    loss, evals = [], []
    for entry in log_history:
        loss_point, eval_point = curve_points(entry, metrics=metrics)
        if loss_point is not None:
            loss.append(loss_point)
        if eval_point is not None:
            evals.append(eval_point)
    return {"loss": loss, "eval": evals}


def _training_args(cfg: TrainConfig, output_dir: Path, *, has_validation: bool, metric: str = "macro_f1") -> Any:
    """TrainingArguments for every task kind; `metric` (a compute_metrics key) picks the best checkpoint."""
    import torch
    from transformers import TrainingArguments

    per_epoch = cfg.evals_per_epoch
    if not has_validation:
        eval_kwargs: dict[str, Any] = {"eval_strategy": "no", "save_strategy": "no"}
    elif per_epoch == 1:
        eval_kwargs = {"eval_strategy": "epoch", "save_strategy": "epoch"}
    else:
        ratio = min(0.999, 1.0 / (cfg.epochs * per_epoch))  # Trainer reads a float < 1 as a share of all steps
        eval_kwargs = {"eval_strategy": "steps", "save_strategy": "steps",
                       "eval_steps": ratio, "save_steps": ratio}
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.eval_batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="linear",
        warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay,
        logging_steps=0.02,
        load_best_model_at_end=has_validation,
        metric_for_best_model=metric,
        greater_is_better=True,
        save_total_limit=1,
        save_only_model=True,  # best-model checkpoints only; optimizer state would be wasted disk
        report_to=cfg.report_to,  # training/tracking.py points it at the run folder
        seed=cfg.seed,
        data_seed=cfg.seed,
        disable_tqdm=True,
        label_names=["labels"],
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length",  # less padding per batch: the biggest CPU saving
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=cpu_ranks(),  # several ranks without CUDA: join them over gloo (training/distributed.py)
        **eval_kwargs,
    )


def run_training(data: str | Path | CuratedData, *, config: TrainConfig | SFTConfig | None = None,
                 runs_root: str | Path, progress: ProgressFn | None = None,
                 should_stop: ShouldStop | None = None, callbacks: Sequence[Any] = (),
                 cache_dir: str | Path | None = None, run_id: str | None = None,
                 promote: bool = False, models_dir: str | Path | None = None,
                 on_phase: Callable[[str], None] | None = None) -> RunInfo:
    """Train a classifier (or, for a spans data set, a token classifier: training/tokens.py; for a generation data
    set, a LoRA SFT of a causal LM: training/sft.py) on a curated data set and register it as a run; return the
    run's RunInfo.

    data: a curated folder (manifest.json + parquet splits) or a CuratedData in memory.
    config: TrainConfig ([train]) for the classification and spans kinds, SFTConfig ([sft]) for generation;
    None = that section's defaults.
    progress(done_steps, total_steps) as optimisation advances; should_stop() is polled every step and
    makes the run end as TrainingCancelled (no run folder, a 'cancelled' status record).
    callbacks: extra transformers TrainerCallbacks (the background job's status writer).
    cache_dir: embedding cache for the fast head (studio.embeddings). promote: make it the current run.
    models_dir (generation): where the default base model is converted once; default <runs_root>/../models.
    on_phase(text) (generation): what the run does after training (evaluating, saving), for the job status.
    Raises EmptyDataError/DataError before loading any model when the data cannot be trained on.
    """
    check_launch()
    curated = load_curated(data) if isinstance(data, (str, Path)) else data
    validate_curated(curated)
    generation = curated.task == "generation"
    cfg = _config_for(curated.task, config)
    registry = RunRegistry(runs_root)
    if generation:
        from training.llm import resolve_causal_lm

        models_dir = Path(models_dir) if models_dir else registry.root.resolve().parent / MODELS_DIR
        model_path = resolve_causal_lm(cfg.base_model, models_dir=models_dir)
    else:
        model_path = resolve_model_path(cfg.base_model)
    run_id = agree(run_id or registry.new_run_id(curated.version_id))  # rank 0's: ids carry the time
    main = is_main_process()
    work = registry.begin(run_id) if main else registry.root / f".tmp-{run_id}"
    try:
        if generation:
            from training.llm import torch_threads
            from training.sft import train_sft

            with torch_threads(cfg.threads):
                sft_metrics = train_sft(work, curated, cfg, model_path, progress=progress, should_stop=should_stop,
                                        callbacks=callbacks, run_id=run_id, on_phase=on_phase)
            if not main:
                return replica_info(run_id, sft_metrics)
            shutil.rmtree(work / "checkpoints", ignore_errors=True)
            info = registry.finish(run_id)
        else:
            from training.tracking import check_reporter, reporter_environment

            check_reporter(cfg.report_to, section="train")
            with reporter_environment(cfg.report_to, work, run_id):
                if curated.task == "spans":
                    from training.tokens import train_token_classifier

                    result = train_token_classifier(work, curated, cfg, model_path, progress=progress,
                                                    should_stop=should_stop, callbacks=callbacks, run_id=run_id)
                else:
                    result = _train_into(work, curated, cfg, model_path, progress=progress,
                                         should_stop=should_stop, callbacks=callbacks, cache_dir=cache_dir,
                                         run_id=run_id)
            if not main:
                return replica_info(run_id, result["metrics"])
            from training.artefacts import write_run

            shutil.rmtree(work / "checkpoints", ignore_errors=True)
            result.pop("report_probs")
            write_run(work, run_id=run_id, curated=curated, cfg=cfg, model_path=model_path, **result)
            info = registry.finish(run_id)
    except TrainingCancelled as exc:
        if main:
            registry.abort(run_id, status="cancelled", error=str(exc), data_version=curated.version_id)
        raise
    except BaseException as exc:  # KeyboardInterrupt/SIGTERM too: never leave a half run behind
        if main:
            status = "cancelled" if isinstance(exc, (KeyboardInterrupt, SystemExit)) else "failed"
            registry.abort(run_id, status=status, error=f"{type(exc).__name__}: {exc}",
                           data_version=curated.version_id)
        if isinstance(exc, Exception) and not isinstance(exc, StudioError):
            raise TrainingError(f"Training run {run_id} failed: {type(exc).__name__}: {exc}",
                                hint="see the job log for the traceback; the current model is unchanged") from exc
        raise
    if promote:
        registry.promote(run_id)
    return info


def _config_for(task: str, config: TrainConfig | SFTConfig | None) -> Any:
    """The settings section a task kind trains with: [sft] for generation, [train] for the others; refuses the
    other section's class (its fields mean something else) with a ConfigError."""
    wanted = SFTConfig if task == "generation" else TrainConfig
    if config is None:
        return wanted()
    if not isinstance(config, wanted):
        raise ConfigError(f"A {task} data set trains with the [{wanted.SECTION}] settings ({wanted.__name__}), "
                          f"but got {type(config).__name__} ([{config.SECTION}]).",
                          hint=f"pass config=ws.cfg.{wanted.SECTION} (studio.toml's [{wanted.SECTION}] section)")
    return config


def _train_into(work: Path, curated: CuratedData, cfg: TrainConfig, model_path: str, *,
                progress: ProgressFn | None, should_stop: ShouldStop | None, callbacks: Sequence[Any],
                cache_dir: str | Path | None, run_id: str) -> dict[str, Any]:
    """The training itself; returns what write_run needs (model, tokenizer, metrics) and report_probs, the
    selected model's probabilities on the report split (test if there is one; training/crossval.py reads them)."""
    import torch
    from transformers import AutoTokenizer, DataCollatorWithPadding, EarlyStoppingCallback, PrinterCallback, Trainer

    from studio.embeddings import encode
    from training.head import fit_linear_head
    from training.lora import add_lora, build_classifier, count_parameters, restore_state, set_head, trainable_state
    from training.metrics import full_report, summary_metrics, trainer_metrics

    def stop_requested() -> bool:
        return should_stop is not None and should_stop()

    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    k, objective = len(curated.class_names), curated.objective
    has_val, has_test = len(curated.validation) > 0, len(curated.test) > 0
    y_train, y_val, y_test = (curated.targets(s) for s in ("train", "validation", "test"))

    # 1. The fast head: logistic regression on frozen embeddings (also the classifier's starting point).
    fast: dict[str, Any] = {}
    head = None
    if cfg.head_init == "logreg":
        t0 = time.perf_counter()
        log.info("run %s: embedding %d texts and fitting the fast head", run_id, len(curated.train))
        emb = {s: encode(curated.texts(s), model=model_path, max_length=cfg.max_length, cache_dir=cache_dir)
               for s in ("train", "validation", "test") if len(curated.split(s))}
        head = fit_linear_head(emb["train"], y_train, num_classes=k, objective=objective, C=cfg.head_c,
                               class_weights=curated.class_weights, seed=cfg.seed)
        fast["fit_time_s"] = round(time.perf_counter() - t0, 2)
        if has_val:
            fast["validation_probs"] = head.predict_proba(emb["validation"])
            fast["validation"] = summary_metrics(y_val, fast["validation_probs"], objective=objective)
        if has_test:
            fast["test_probs"] = head.predict_proba(emb["test"])
            fast["test"] = summary_metrics(y_test, fast["test_probs"], objective=objective)
    if stop_requested():
        raise TrainingCancelled(f"Run {run_id} was cancelled before fine-tuning started.")

    # 2. The classifier, head copied from the fast head, then LoRA (or every weight, for method=full).
    model = build_classifier(model_path, k, objective=objective, class_weights=curated.class_weights)
    if head is not None:
        set_head(model, head.weight, head.bias)
    if cfg.method == "lora":
        model = add_lora(model, r=cfg.lora_r, alpha=cfg.lora_alpha, dropout=cfg.lora_dropout,
                         target_modules=cfg.target_modules, layers=cfg.lora_layers)
    trainable, total = count_parameters(model)
    initial = trainable_state(model) if head is not None else None

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_ds = _tokenized(tokenizer, curated.texts("train"), y_train, cfg.max_length)
    val_ds = _tokenized(tokenizer, curated.texts("validation"), y_val, cfg.max_length) if has_val else None
    args = _training_args(cfg, work / "checkpoints", has_validation=has_val)
    all_callbacks = [_make_callbacks(progress, should_stop), *callbacks]
    if has_val and cfg.early_stopping_patience > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.early_stopping_patience))
    trainer = Trainer(model=model, args=args, train_dataset=train_ds, eval_dataset=val_ds,
                      data_collator=DataCollatorWithPadding(tokenizer),
                      compute_metrics=trainer_metrics(objective=objective),
                      callbacks=all_callbacks)
    trainer.remove_callback(PrinterCallback)  # progress goes to `progress` and the job status, not stdout
    # Trainer warns that it cannot find labels in a PeftModel's signature; label_names is set explicitly.
    logging.getLogger("transformers.trainer").setLevel(logging.ERROR)
    log.info("run %s: fine-tuning (%s), %d of %d parameters trainable", run_id, cfg.method, trainable, total)
    t0 = time.perf_counter()
    output = trainer.train()
    train_time = time.perf_counter() - t0
    if stop_requested():
        raise TrainingCancelled(f"Run {run_id} was cancelled at step {trainer.state.global_step}.")

    # group_by_length also reorders Trainer's *evaluation* batches (transformers 5); predictions below must
    # come back in row order to line up with the targets, so sampling turns sequential from here on.
    trainer.args.train_sampling_strategy = "sequential"

    def probs(ds: Any) -> np.ndarray:
        return objective.probs(np.asarray(trainer.predict(ds).predictions))

    tuned: dict[str, Any] = {}
    val_probs = probs(val_ds) if has_val else None
    if has_val:
        tuned["validation"] = summary_metrics(y_val, val_probs, objective=objective)
    # 3. Keep the better of the two on validation; without validation the fine-tuned model is kept.
    selected = cfg.method
    if has_val and "validation" in fast and fast["validation"]["macro_f1"] >= tuned["validation"]["macro_f1"]:
        selected = "fast_head"
        restore_state(trainer.model, initial)  # LoRA B back to zero + LR head = exactly the fast head
        val_probs = fast["validation_probs"]
    report_split = "test" if has_test else ("validation" if has_val else "train")
    if report_split == "test" and selected == "fast_head":
        final_probs = fast["test_probs"]
    else:
        eval_ds = _tokenized(tokenizer, curated.texts(report_split), curated.targets(report_split), cfg.max_length)
        final_probs = probs(eval_ds)
    if has_test and selected != "fast_head":
        tuned["test"] = summary_metrics(y_test, final_probs, objective=objective)
    fast.pop("test_probs", None)
    fast.pop("validation_probs", None)
    # Per task, the kept model's decision on validation and the reported split (training/compare.py).
    predictions = [predictions_frame(split, curated.split(split)["task_id"], objective.truth(curated.targets(split)),
                                     objective.decide(p).tolist())
                   for split, p in {"validation": val_probs, report_split: final_probs}.items()
                   if p is not None and "task_id" in curated.split(split).columns]
    report = full_report(curated.targets(report_split), final_probs, class_names=curated.class_names,
                         objective=objective)
    metrics = {
        "summary": {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "split": report_split,
                    "selected": selected},
        report_split: report,
        "fast_head": fast,
        cfg.method: tuned,
        "selected": selected,
        "curve": _curve(trainer.state.log_history),
        "best_checkpoint_metric": trainer.state.best_metric,
        "global_step": trainer.state.global_step,
        "world_size": trainer.args.world_size,  # processes that trained together (training/distributed.py)
        "epochs_done": trainer.state.epoch,
        "train_time_s": round(train_time, 2),
        "total_time_s": round(time.perf_counter() - started, 2),
        "train_examples_per_s": round(output.metrics.get("train_samples_per_second", 0.0), 2),
        "trainable_parameters": trainable,
        "total_parameters": total,
    }
    return {"model": trainer.model, "tokenizer": tokenizer, "metrics": metrics, "report_probs": final_probs,
            "predictions": predictions}
