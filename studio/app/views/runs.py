"""Runs: every training run with the labels it learned from; compare, inspect, promote one to current."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from studio.app.charts import heatmap, utc_seconds
from studio.app.state import guarded, workspace
from training.metrics import model_choice_line, validation_macro_f1
from training.runs import RunRegistry, run_metrics


st.title("Runs")
ws = workspace()
registry = RunRegistry(ws.runs_root)
runs = registry.list()
if not runs:
    st.info("No runs yet: press **Train on current labels** on the Train page.")
    st.stop()
current = registry.current()
table = pd.DataFrame([{
    "current": "current" if current and r.id == current.id else "", "run": r.id, "status": r.status,
    "created": utc_seconds(r.created), "data version": r.data_version,
    "accuracy": r.metrics.get("accuracy"), "macro-F1": r.metrics.get("macro_f1"),
    "evaluated on": r.metrics.get("split"), "model": r.metrics.get("selected"), "error": r.error,
} for r in runs])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={"created": st.column_config.TextColumn("created (UTC)")})

done = [r for r in runs if r.status == "succeeded"]
if not done:
    st.stop()
chosen = st.multiselect("Compare runs", [r.id for r in done], default=[r.id for r in done[:2]])
by_id = {r.id: r for r in done}
if chosen:
    rows = []
    for run_id in chosen:
        m = run_metrics(by_id[run_id].path)
        _, fast, tuned = validation_macro_f1(m)
        rows.append({"run": run_id, "accuracy": m.get("summary", {}).get("accuracy"),
                     "macro-F1": m.get("summary", {}).get("macro_f1"), "kept": m.get("selected"),
                     "fast head val macro-F1": fast, "fine-tuned val macro-F1": tuned, "train s": m.get("train_time_s"),
                     "examples/s": m.get("train_examples_per_s"), "adapter bytes": m.get("adapter_size_bytes")})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")

    run_id = st.selectbox("Inspect", chosen)
    m = run_metrics(by_id[run_id].path)
    st.caption(model_choice_line(m))
    split = m.get("summary", {}).get("split", "test")
    report = m.get(split, {})
    classes = list(report.get("per_class", {}))
    # The heatmap gets the full width: in half a column its x axis had room for only every other class name.
    st.subheader(f"Confusion matrix ({split})")
    cm = report.get("confusion_matrix")
    if cm and classes and not isinstance(cm[0][0], list):
        long = pd.DataFrame([{"true": classes[i], "predicted": classes[j], "count": cm[i][j]}
                             for i in range(len(classes)) for j in range(len(classes))])
        st.altair_chart(heatmap(long, x="predicted", y="true", scheme="blues", sort=classes), width="stretch")
    st.subheader("Per class")
    st.dataframe(pd.DataFrame(report.get("per_class", {})).T.rename_axis("class").reset_index(), hide_index=True,
                 width="stretch")
    is_current = bool(current and current.id == run_id)
    if st.button(f"Promote {run_id} to current model", disabled=is_current,
                 help="It is the current model already." if is_current else
                 "The ML backend and the Active learning page use the current model."):
        if guarded(lambda: registry.promote(run_id)) is not None:
            st.success(f"{run_id} is now the current model.")
            st.rerun()
    if is_current:  # a greyed-out button alone does not say why; its tooltip needs a hover
        st.caption(f"`{run_id}` is the current model.")
