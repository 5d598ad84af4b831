"""Runs: every training run with the labels it learned from; compare, inspect, promote one to current.

A spans (NER) run is scored on entities, not on rows: entity F1 with its precision and recall, per entity type,
and a type confusion with a "none" row and column for spurious and missed entities (training/tokens.py).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from studio.app.charts import heatmap, utc_seconds
from studio.app.state import download_folder, guarded, workspace
from training.metrics import RunMetrics, Scores, model_choice_line, validation_macro_f1
from training.runs import RunRegistry, run_metrics

#: The runs table's score columns per kind of run: (header, key of the run's summary).
SCORE_COLUMNS = {"classification": (("accuracy", "accuracy"), ("macro-F1", "macro_f1")),
                 "spans": (("entity F1", "entity_f1"), ("precision", "precision"), ("recall", "recall")),
                 "generation": (("ROUGE-L", "rouge_l"), ("base ROUGE-L", "base_rouge_l"))}


def _kind(m: RunMetrics) -> str:
    return m.task if m.task in ("spans", "generation") else "classification"


def score_cells(m: RunMetrics, kinds: list[str]) -> dict[str, Any]:
    """The score columns of every kind in `kinds`, filled from a run's summary where the run is of that kind."""
    def value(key: str) -> Any:
        if m.is_generation:
            g = m.generation
            return g.base.rouge_l if key == "base_rouge_l" else getattr(g.fine_tuned, key)
        return getattr(m.summary, key)

    return {header: value(key) if kind == _kind(m) else None
            for kind in kinds for header, key in SCORE_COLUMNS[kind]}


def compare_row(run_id: str, m: RunMetrics) -> dict[str, Any]:
    """One row of the comparison table from a run's metrics."""
    if m.is_generation:
        from studio.app.gen_runs import compare_row as generation_row

        return generation_row(run_id, m)
    common = {"train s": m.train_time_s, "examples/s": m.train_examples_per_s, "adapter bytes": m.adapter_size_bytes}
    if m.is_spans:
        return {"run": run_id, "entity F1": m.summary.entity_f1, "precision": m.summary.precision,
                "recall": m.summary.recall, "partial-match F1": (m.report.get("partial") or {}).get("f1"),
                "kept": m.selected, "val entity F1": m.validation.get(m.selected, Scores()).entity_f1, **common}
    _, fast, tuned = validation_macro_f1(m)
    return {"run": run_id, "accuracy": m.summary.accuracy, "macro-F1": m.summary.macro_f1,
            "kept": m.selected, "fast head val macro-F1": fast, "fine-tuned val macro-F1": tuned, **common}


def confusion_frame(labels: list[str], matrix: list[list[int]]) -> pd.DataFrame:
    """Long frame (true, predicted, count) of a square matrix whose rows and columns follow `labels`."""
    return pd.DataFrame([{"true": labels[i], "predicted": labels[j], "count": matrix[i][j]}
                         for i in range(len(labels)) for j in range(len(labels))])


def show_spans_report(report: dict[str, Any], split: str) -> None:
    """A spans run's report of one split: the type confusion as a heatmap, then the per-type table."""
    st.subheader(f"Type confusion ({split})")
    confusion = report.get("type_confusion") or {}
    labels, matrix = confusion.get("labels") or [], confusion.get("matrix") or []
    if labels and matrix:
        st.altair_chart(heatmap(confusion_frame(labels, matrix), x="predicted", y="true", scheme="blues",
                                sort=labels), width="stretch")
        st.caption("Annotated entities (rows) against the model's (columns), paired where their words overlap. "
                   "Column **none**: an annotated entity the model missed; row **none**: an entity the model "
                   "found where none is annotated.")
    st.subheader("Per type")
    st.dataframe(pd.DataFrame(report.get("per_class", {})).T.rename_axis("type").reset_index(), hide_index=True,
                 width="stretch")
    partial = report.get("partial") or {}
    if partial:
        st.caption(f"Counting an overlapping entity of the right type as found: F1 {partial.get('f1', 0):.3f} "
                   f"(precision {partial.get('precision', 0):.3f}, recall {partial.get('recall', 0):.3f}). "
                   f"Words tagged right: {report.get('accuracy', 0):.1%} of {report.get('words', 0)}.")


def show_common_test_set(chosen: list) -> None:
    """Whether the compared runs were scored on the same test tasks; if not, their scores on the shared ones."""
    if len(chosen) < 2:
        return
    hashes = {r.test_set for r in chosen}
    if len(hashes) == 1 and "" not in hashes:
        st.caption(f"All measured on the same test set `{hashes.pop()}`: the scores above compare directly.")
        return
    from training.compare import common_scores

    common = guarded(lambda: common_scores({r.id: r.path for r in chosen}))
    if common is None:
        return
    st.info("These runs were measured on different test sets (tasks are added to test as labels come in, and a "
            "re-split replaces it), so the scores above do not compare directly. " + common.note)
    if common.n:
        st.dataframe(common.scores, hide_index=True, width="stretch")


def lineage_line(ws, run_path) -> str:
    """Which labels trained a run and which tasks measured it: snapshot, the review decisions in its data version,
    the test set."""
    import json

    data_file = run_path / "data.json"
    data = json.loads(data_file.read_text()) if data_file.exists() else {}
    version = data.get("version_id", "")
    manifest_file = ws.folder("exports") / version / "manifest.json"
    manifest = json.loads(manifest_file.read_text()) if version and manifest_file.exists() else {}
    decisions = manifest.get("decisions_applied")
    said = (", ".join(f"{n} {a}" for a, n in decisions.items()) or "none") if isinstance(decisions, dict) else (
        str(decisions) if decisions is not None else "unknown (the data version is not in this project's exports)")
    test = (data.get("test_set") or {}).get("hash")
    return (f"Learned from snapshot `{data.get('snapshot_id') or '-'}` through data version `{version or '-'}` "
            f"(review decisions applied: {said}); scored on test set `{test or 'unknown'}`"
            + (f" ({data['test_set'].get('tasks')} tasks)." if test else "."))


st.title("Runs")
ws = workspace()
registry = RunRegistry(ws.runs_root)
runs = registry.list()
if not runs:
    st.info("No runs yet: press **Train on current labels** on the Train page.")
    st.stop()
current = registry.current()
summaries = {r.id: RunMetrics.from_json(r.metrics) for r in runs}
kinds = [k for k in SCORE_COLUMNS if k in {_kind(summaries[r.id]) for r in runs if r.metrics}] or ["classification"]
table = pd.DataFrame([{
    "current": "current" if current and r.id == current.id else "", "run": r.id, "status": r.status,
    "created": utc_seconds(r.created), "data version": r.data_version, **score_cells(summaries[r.id], kinds),
    "evaluated on": summaries[r.id].split if r.metrics else None, "test set": r.test_set or None,
    "model": summaries[r.id].selected or None,
    "error": r.error,
} for r in runs])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"created": st.column_config.TextColumn("created (UTC)")})

done = [r for r in runs if r.status == "succeeded"]
if not done:
    st.stop()
chosen = st.multiselect("Compare runs", [r.id for r in done], default=[r.id for r in done[:2]])
by_id = {r.id: r for r in done}
if chosen:
    rows = [compare_row(run_id, RunMetrics.from_json(run_metrics(by_id[run_id].path))) for run_id in chosen]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    show_common_test_set([by_id[run_id] for run_id in chosen])

    run_id = st.selectbox("Inspect", chosen)
    m = RunMetrics.from_json(run_metrics(by_id[run_id].path))
    st.caption(model_choice_line(m))
    st.caption(lineage_line(ws, by_id[run_id].path))
    split, report = m.split, m.report
    classes = list(report.get("per_class", {}))
    # The heatmaps get the full width: in half a column the x axis had room for only every other class name.
    if m.is_generation:
        from studio.app.gen_runs import render as render_generation

        render_generation(ws, by_id[run_id], m, done)
    elif m.is_spans:
        show_spans_report(report, split)
    else:
        st.subheader(f"Confusion matrix ({split})")
        cm = report.get("confusion_matrix")
        if cm and classes and not isinstance(cm[0][0], list):
            st.altair_chart(heatmap(confusion_frame(classes, cm), x="predicted", y="true", scheme="blues",
                                    sort=classes), width="stretch")
        st.subheader("Per class")
        st.dataframe(pd.DataFrame(report.get("per_class", {})).T.rename_axis("class").reset_index(),
                     hide_index=True, width="stretch")
    download_folder(f"Download {run_id} (zip: adapter, tokenizer, metrics, model card)", by_id[run_id].path,
                    key="download_run")
    card = by_id[run_id].path / "README.md"
    if card.exists():
        st.download_button("Download the model card", card.read_bytes(), file_name=f"{run_id}-README.md",
                           mime="text/markdown", key="download_card", on_click="ignore", icon=":material/download:")
    is_current = bool(current and current.id == run_id)
    if st.button(f"Promote {run_id} to current model", disabled=is_current,
                 help="It is the current model already." if is_current else
                 "The ML backend and the Active learning page use the current model."):
        if guarded(lambda: registry.promote(run_id)) is not None:
            st.success(f"{run_id} is now the current model.")
            st.rerun()
    if is_current:  # a greyed-out button alone does not say why; its tooltip needs a hover
        st.caption(f"`{run_id}` is the current model.")
