"""Active learning: where the model is unsure, the next batch to label, the push into Label Studio, and the
learning curve across runs with a forecast of the labels a target score needs."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from studio.active import DEFAULT_STRATEGY, STRATEGIES, fit_learning_curve
from studio.app.state import guarded, progress_callback, run_metrics, snapshot_or_stop, workspace
from studio.learner import SCORERS
from training.runs import RunRegistry

st.title("Active learning")
ws = workspace()
project, snapshot = snapshot_or_stop(ws)
registry = RunRegistry(ws.runs_root)
current = registry.current()
st.caption(f"Current model: `{current.id}`" if current else
           "No trained model yet: the fast learner scores the pool from today's labels (or, with fewer than two "
           "labeled classes, the first batch is chosen for diversity).")

SCORER_HELP = {
    "auto": "the current training run if there is one, else the fast learner",
    "run": "the current training run (LoRA); without one, a diverse cold start",
    "fast": "the fast learner: logistic regression on embeddings of today's curated labels, self-trained on "
            "the pool (seconds, no training job)",
}
c0, c1, c2 = st.columns([2, 3, 1])
scorer = c0.selectbox("Model", SCORERS, index=SCORERS.index(ws.cfg.active.scorer),
                      format_func=lambda k: f"{k}: {SCORER_HELP[k]}")
model_based = [k for k, s in STRATEGIES.items() if s.needs_model]
strategy = c1.selectbox("Strategy", model_based, index=model_based.index(DEFAULT_STRATEGY),
                        format_func=lambda k: f"{k}: {STRATEGIES[k].description}")
n = c2.number_input("Batch size", min_value=1, max_value=1000, value=20)
if st.button("Score the unlabeled pool", type="primary"):
    bar = st.progress(0.0, text="Predicting ...")
    st.session_state["scored"] = guarded(lambda: ws.score_pool(
        snapshot, strategy=strategy, n=int(n), scorer=scorer, progress=progress_callback(bar, "Predicting")))
    bar.empty()

scored = st.session_state.get("scored")
if scored is not None:
    pool = scored.pool
    if "confidence" in pool:
        st.subheader(f"Uncertainty of the pool ({len(pool)} unlabeled tasks)")
        st.altair_chart(alt.Chart(pool).mark_bar().encode(
            x=alt.X("confidence:Q", bin=alt.Bin(maxbins=30), title="confidence (lower = less certain)"),
            y=alt.Y("count():Q", title="tasks")), width="stretch")
    st.subheader(f"Next batch ({scored.strategy}, model {scored.model_version or 'none: cold start'})")
    cols = [c for c in ("task_id", "text", "label", "confidence") if c in scored.batch]
    st.dataframe(scored.batch[cols], hide_index=True, width="stretch")
    if scored.model_version and st.button(f"Push predictions of {scored.model_version} to Label Studio"):
        bar = st.progress(0.0, text="Pushing ...")
        result = guarded(lambda: ws.push_pool(scored, progress=progress_callback(bar, "Pushing")))
        bar.empty()
        if result is not None:
            st.success(f"Pushed {result['pushed']} predictions; removed {result['old_predictions_removed']} of "
                       "older versions. Label Studio now serves the least certain task first (Uncertainty sampling), "
                       "and the 'Most uncertain' tab lists them by score.")

st.subheader("Learning curve across runs")
points = []
for run in registry.list(include_failed=False):
    m = run_metrics(run.path)
    data = ws.runs_root / run.id / "data.json"
    labels = pd.read_json(data, typ="series")["counts"].get("train") if data.exists() else None
    kept = m.get("selected", "")
    val = (m.get("fast_head", {}) if kept == "fast_head" else m.get(kept, {})).get("validation", {})
    if labels and "macro_f1" in val:
        points.append({"labels": labels, "val_macro_f1": val["macro_f1"], "run": run.id})
if not points:
    st.write("Train a model to start the curve.")
else:
    curve = pd.DataFrame(points)
    st.altair_chart(alt.Chart(curve).mark_line(point=True).encode(
        x=alt.X("labels:Q", title="training labels"), y=alt.Y("val_macro_f1:Q", title="validation macro-F1"),
        tooltip=["run", "labels", "val_macro_f1"]), width="stretch")
    target = st.slider("Target validation macro-F1", 0.5, 0.99, 0.9, 0.01)
    forecast = guarded(lambda: fit_learning_curve(curve["labels"], curve["val_macro_f1"], target=target))
    if forecast is not None:
        st.info(forecast.message)
