"""The active-learning stage of a workspace (`ws.active`): rank the unlabeled pool with the current training
run or the fast learner (studio/fast_models.py), push the ranked pool to Label Studio as pre-annotations, and
the fast learner alone for the ML backend's pre-annotations before the first training run, and refresh the fast
learner's queue after new annotations (the ML backend calls refresh_queue every [active] refresh_every). The
strategies themselves are studio/active.py's, the scoring and pushing studio/pool.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from studio.snapshot import Snapshot
from studio.types import ProgressFn

if TYPE_CHECKING:
    from studio.workspace import Workspace

QUEUE_FILE = "queue.json"  # under the project's active/ folder: the last push (ActiveService.last_push)


class ActiveService:
    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    def score_pool(self, snapshot: Snapshot, *, strategy: str | None = None, n: int = 20,
                   scorer: str | None = None, progress: ProgressFn | None = None):
        """Rank the snapshot's unlabeled tasks.

        scorer (None = [active] scorer): "run" = the current training run's predictions; "fast" = the fast
        learner (studio/learner.py) fitted in seconds on the curated labels of this snapshot; "auto" = the run
        if there is one, else the fast learner once two classes are labeled. With no model: a cold start
        (diverse sampling). strategy: a key of studio.active.STRATEGIES; None = DEFAULT_STRATEGY.
        Raises EmptyDataError when scorer="fast" has fewer than two labeled classes to learn from.
        """
        from studio.active import DEFAULT_STRATEGY, get_strategy
        from studio.pool import score_pool
        from studio.records import unlabeled_view
        from training.runs import RunRegistry

        ws = self.ws
        scorer = scorer or ws.cfg.active.scorer
        kind = snapshot.schema.kind
        kind.require("active", what="Active learning")
        pool = unlabeled_view(snapshot.tasks, snapshot.annotations)
        texts = pool["text"].tolist()
        current = RunRegistry(ws.runs_root).current() if scorer != "fast" else None
        probs, version, embeddings = None, None, None
        if current is not None and texts:
            from training.predict import load_predictor

            predictor = load_predictor(current.path)
            check_run_fits(predictor, kind, current.id)
            probs = kind.predict(predictor, texts, progress=progress)
            version = current.id
        elif scorer != "run" and texts:
            fitted = self._fast_pool_probs(snapshot, texts, required=scorer == "fast", progress=progress)
            if fitted is not None:
                probs, embeddings, version = fitted
        chooser = get_strategy((strategy or DEFAULT_STRATEGY) if probs is not None else "cold_start")
        if chooser.needs_embeddings and texts and embeddings is None:
            embeddings = ws.embed(texts)
        return score_pool(pool, probs, kind, strategy=chooser.name, n=n,
                          embeddings=embeddings, model_version=version)

    def _fast_pool_probs(self, snapshot: Snapshot, pool_texts: list[str], *, required: bool,
                         progress: ProgressFn | None = None):
        """(the fast learner's output on the pool, pool embeddings or None, model_version), fitted on the curated
        labels, or None (when not `required`) if there is nothing to learn from yet (studio/fast_models.py)."""
        from studio.fast_models import fast_scores

        ws = self.ws
        return fast_scores(snapshot, self._curated(snapshot), pool_texts, embed=ws.embed,
                           embed_words=ws.embed_words, config=ws.cfg.active, required=required, progress=progress)

    def fast_model(self, snapshot: Snapshot):
        """The fast learner fitted on the snapshot's curated labels alone (no pool), for pre-annotations before the
        first training run (studio/mlbackend.py); None if there is nothing to learn from yet."""
        from studio.fast_models import fast_model

        ws = self.ws
        return fast_model(snapshot, self._curated(snapshot), embed=ws.embed, embed_words=ws.embed_words,
                          config=ws.cfg.active)

    def _curated(self, snapshot: Snapshot) -> pd.DataFrame:
        from studio.prepare import curated_view

        return curated_view(snapshot, self.ws.decisions(snapshot.manifest["project_id"]).read())

    # -- instruction -> response: drafts ---------------------------------------------------------------------------
    def generator(self):
        """(the current run, its Generator: training/generate.py), refused unless the run is this project's kind."""
        from studio.errors import DataError, EmptyDataError
        from training.generate import Generator
        from training.runs import RunRegistry

        current = RunRegistry(self.ws.runs_root).current()
        if current is None:
            raise EmptyDataError("There is no trained model yet to write drafts.",
                                 hint="train on the answered prompts first (Train page or `studio train`)")
        if current.metrics.get("task") not in (None, "generation") or not (current.path / "adapter").exists():
            raise DataError(f"The current run {current.id} is not an instruction -> response model.",
                            hint="train a run on this project, then promote it")
        return current, Generator.from_run(current.path, models_dir=self.ws.folder("models"))

    def draft_pool(self, snapshot: Snapshot, *, n: int = 20, by_confidence: bool = False,
                   progress: ProgressFn | None = None):
        """Choose n unanswered prompts by diversity over their embeddings and let the current run draft an answer
        to each (studio/drafts.py). by_confidence: draft 3 x n diverse prompts, keep the n least confident."""
        from studio.drafts import draft_batch
        from studio.records import unlabeled_view
        from training.llm import torch_threads
        from training.runs import run_metrics

        ws = self.ws
        kind = snapshot.schema.kind
        kind.require("active", what="Drafts for unanswered prompts")
        pool = unlabeled_view(snapshot.tasks, snapshot.annotations)
        run, generator = self.generator()
        cfg = ws.cfg.sft
        # [sft] max_new_tokens, else (0) the answer length the run chose from its training answers
        budget = cfg.max_new_tokens or int(run_metrics(run.path).get("max_new_tokens") or 256)

        def generate(texts: list[str], progress: ProgressFn | None = None):
            with torch_threads(cfg.threads):
                out = generator.generate(texts, max_new_tokens=budget,
                                         batch_size=cfg.generation_batch_size, progress=progress)
            return out.texts, out.mean_logprobs

        embeddings = ws.embed(pool["text"].tolist()) if len(pool) else None
        return draft_batch(pool, embeddings, generate, n=n, model_version=run.id, by_confidence=by_confidence,
                           progress=progress)

    def push_drafts(self, batch, *, progress: ProgressFn | None = None) -> dict[str, int]:
        """Push a DraftBatch as <TextArea> predictions (model_version = the run), make the project show that
        version's drafts in the editor, keep a "Drafts to correct" tab, and record every draft in the draft log."""
        from studio.drafts import DRAFTS_TAB, DraftLog
        from studio.labeling import parse_labeling_config
        from studio.labelstudio.client import dm_filters, dm_item
        from studio.push import push_predictions

        ws = self.ws
        project = ws.project()
        schema = parse_labeling_config(project.label_config)
        rows = batch.pool.rename(columns={"draft": "target", "confidence": "score"})[["task_id", "target", "score"]]
        pushed = push_predictions(ws.client, project.id, rows, schema, model_version=batch.model_version,
                                  progress=progress)
        DraftLog(ws.folder("drafts")).append(batch)
        ws.client.update_project(project.id, model_version=batch.model_version, show_collab_predictions=True)
        filters = dm_filters(dm_item("tasks:predictions_model_versions", "contains", "List", [batch.model_version]),
                             dm_item("tasks:total_annotations", "equal", "Number", 0))
        ws.client.upsert_view(project.id, DRAFTS_TAB, filters=filters, ordering=["tasks:id"])
        return {"pushed": pushed}

    def draft_edits(self, snapshot: Snapshot):
        """(each answered draft beside the expert's answer, per-run edit statistics) for the snapshot."""
        from studio.drafts import DraftLog, draft_edits, edit_stats

        drafts = DraftLog(self.ws.folder("drafts")).read()
        edits = draft_edits(drafts, snapshot.responses())
        return edits, edit_stats(edits, drafts)

    def push_pool(self, scored, *, progress: ProgressFn | None = None) -> dict[str, Any]:
        """Push a ranked pool (score_pool's result) to the project in the strategy's order; tasks whose top-1
        probability is below [active] preannotate_threshold get no pre-selected answer (studio/pool.py)."""
        from studio.atomic import write_json_atomic
        from studio.labeling import parse_labeling_config
        from studio.pool import push_pool

        project = self.ws.project()
        result = push_pool(self.ws.client, project.id, scored, parse_labeling_config(project.label_config),
                           threshold=self.ws.cfg.active.preannotate_threshold, progress=progress)
        # What refresh_queue repeats: the strategy and batch size of the queue annotators now get.
        write_json_atomic(self.ws.folder("active") / QUEUE_FILE,
                          {"project_id": project.id, "model_version": scored.model_version,
                           "strategy": scored.strategy, "n": len(scored.batch), **result})
        return result

    def last_push(self) -> dict[str, Any] | None:
        """What the last push_pool of this project sent (model_version, strategy, n and its result), or None."""
        import json

        file = self.ws.folder("active") / QUEUE_FILE
        return json.loads(file.read_text(encoding="utf-8")) if file.exists() else None

    def refresh_queue(self, *, progress: ProgressFn | None = None) -> tuple[dict[str, Any] | None, str]:
        """Keep the fast learner's queue fresh: sync, refit the fast learner on today's curated labels, and push the
        pool again with the last push's strategy and batch size. Only when the queue Label Studio serves now is the
        fast learner's (a training run's queue changes with the next run). Returns (the push result, or None when
        nothing was pushed; a sentence saying what happened)."""
        from studio.fast_models import FAST_PREFIX

        last = self.last_push()
        if last is None:
            return None, "no queue was pushed for this project yet: nothing to refresh"
        if not str(last["model_version"]).startswith(FAST_PREFIX):
            return None, f"the queue is training run {last['model_version']}'s: it changes with the next run"
        project = self.ws.project()
        served = self.ws.client.request("GET", f"api/projects/{project.id}").get("model_version")
        if served != last["model_version"]:
            return None, f"Label Studio now serves {served!r}, not the pushed {last['model_version']}: left alone"
        snapshot = self.ws.sync().snapshot
        if f"{FAST_PREFIX}{snapshot.id}" == last["model_version"]:
            return None, f"no new labels since snapshot {snapshot.id}"
        scored = self.score_pool(snapshot, strategy=last["strategy"], n=int(last["n"]), scorer="fast",
                                 progress=progress)
        result = self.push_pool(scored)
        return result, (f"refreshed the queue with {scored.model_version}: {result['pushed']} tasks, "
                        f"{result['preselected']} with a pre-selected answer, {result['order_only']} order-only")


def check_run_fits(predictor: Any, kind, run_id: str) -> None:
    """Refuse a training run whose task kind or classes are not the project's (its predictions would be wrong)."""
    from studio.errors import DataError

    run_kind = predictor.task
    if run_kind != kind.name or list(predictor.class_names) != list(kind.classes):
        raise DataError(f"Run {run_id} was trained for a {run_kind} task with classes "
                        f"{list(predictor.class_names)[:6]}, not this project's {kind.name} task with classes "
                        f"{list(kind.classes)[:6]}.",
                        hint="train a run on this project (Train page or `studio train`), then promote it")
