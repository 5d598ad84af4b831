"""Active learning: where the model is unsure, the next batch to label, the push into Label Studio, and the
learning curve across runs with a forecast of the labels a target score needs."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from studio.active import DEFAULT_STRATEGY, STRATEGIES, fit_learning_curve
from studio.app.charts import options_help
from studio.app.state import guarded, progress_callback, snapshot_or_stop, workspace
from studio.learner import SCORERS
from studio.pool import push_summary
from training.metrics import RunMetrics, Scores
from training.runs import RunRegistry, run_metrics

SCORER_HELP = {
    "auto": "The current training run if there is one, else the fast learner.",
    "run": "The current training run (LoRA); without one, a diverse cold start.",
    "fast": "The fast learner: logistic regression on embeddings of today's curated labels, self-trained on "
            "the pool (seconds, no training job).",
}
MARGIN = "margin: top-1 − top-2 probability; low = uncertain"


st.title("Active learning")
ws = workspace()
project, snapshot = snapshot_or_stop(ws)
registry = RunRegistry(ws.runs_root)
current = registry.current()
if snapshot.schema.kind.name == "generation":
    from studio.app.gen_active import render

    st.caption(f"Current model: `{current.id}`" if current else "No trained model yet: train on the answered "
               "prompts first (Train page), then draft answers for the rest.")
    render(ws, snapshot)
    st.stop()
st.caption(f"Current model: `{current.id}`" if current else
           "No trained model yet: the fast learner scores the pool from today's labels (or, with fewer than two "
           "labeled classes, the first batch is chosen for diversity).")

# Short option names; the descriptions would be cut off mid-sentence inside the box, so they go under it.
c0, c1, c2 = st.columns([2, 3, 1])
scorer = c0.selectbox("Model", SCORERS, index=SCORERS.index(ws.cfg.active.scorer), help=options_help(SCORER_HELP))
c0.caption(SCORER_HELP[scorer])
model_based = [k for k, s in STRATEGIES.items() if s.needs_model]
strategy = c1.selectbox("Strategy", model_based, index=model_based.index(DEFAULT_STRATEGY),
                        help=options_help({k: STRATEGIES[k].description for k in model_based}))
c1.caption(STRATEGIES[strategy].description)
n = c2.number_input("Batch size", min_value=1, max_value=1000, value=20)
if st.button("Score the unlabeled pool", type="primary"):
    bar = st.progress(0.0, text="Predicting ...")
    st.session_state["scored"] = guarded(lambda: ws.active.score_pool(
        snapshot, strategy=strategy, n=int(n), scorer=scorer, progress=progress_callback(bar, "Predicting")))
    bar.empty()

scored = st.session_state.get("scored")
if scored is not None:
    pool = scored.pool
    if "confidence" in pool:
        st.subheader(f"Margin between the top two labels ({len(pool)} unlabeled tasks)")
        st.altair_chart(alt.Chart(pool).mark_bar().encode(
            x=alt.X("confidence:Q", bin=alt.Bin(maxbins=30), title=MARGIN),
            y=alt.Y("count():Q", title="tasks")), width="stretch")
    st.subheader(f"Next batch ({scored.strategy}, model {scored.model_version or 'none: cold start'})")
    st.caption(f"The {len(scored.batch)} tasks most worth labeling next, the most useful first.")
    batch = scored.batch
    cols = [c for c in ("task_id", "text", "label", "top1", "confidence") if c in batch]
    # Display names only: "label" and "confidence" stay the columns other modules read. "confidence" is the
    # margin, which reads as a near-zero certainty next to the predicted label unless the header says so.
    headers = {"label": st.column_config.TextColumn("predicted label"),
               "top1": st.column_config.NumberColumn("top-1 probability",
                                                     help="the model's probability of the predicted label"),
               "confidence": st.column_config.NumberColumn("margin (top-1 − top-2)",
                                                           help="low = the model hesitates between two labels")}
    st.dataframe(batch[cols], hide_index=True, width="stretch",
                 column_config={k: v for k, v in headers.items() if k in cols} or None)
    if scored.model_version:
        # The push covers the whole pool, not only the batch above, and not every task gets the model's answer: say
        # both before the click.
        threshold = ws.cfg.active.preannotate_threshold
        answered = int((pool["top1"] >= threshold).sum())
        st.caption(f"Pushing covers all {len(pool):,} unlabeled tasks, not only these {len(scored.batch)}: Label "
                   f"Studio will serve them in this order, this batch first. {answered:,} would open with the "
                   f"predicted label of `{scored.model_version}` pre-selected (top-1 probability ≥ {threshold:.2f}, "
                   f"`[active] preannotate_threshold`); the other {len(pool) - answered:,} get their place in the "
                   "queue but no pre-selected answer.")
    if scored.model_version and st.button(f"Push predictions for all {len(pool):,} unlabeled tasks to Label Studio"):
        bar = st.progress(0.0, text="Pushing ...")
        result = guarded(lambda: ws.active.push_pool(scored, progress=progress_callback(bar, "Pushing")))
        bar.empty()
        if result is not None:
            st.success(push_summary(result, strategy=scored.strategy, model_version=scored.model_version))

st.subheader("Learning curve across runs")
points = []
for run in registry.list(include_failed=False):
    m = RunMetrics.from_json(run_metrics(run.path))
    data = ws.runs_root / run.id / "data.json"
    labels = pd.read_json(data, typ="series")["counts"].get("train") if data.exists() else None
    val = m.validation.get(m.selected, Scores()).macro_f1
    if labels and val is not None:
        points.append({"labels": labels, "val_macro_f1": val, "run": run.id})
NEED_TWO = "the curve and the forecast need two or more runs on different amounts of labels."
curve = pd.DataFrame(points, columns=["labels", "val_macro_f1", "run"])
common_note = ""
if len(curve) >= 2:
    # Runs are compared on the validation tasks all of them were scored on (a task keeps its split, so the
    # first run's validation tasks are in every later one's, unless the project was re-split).
    from training.compare import MIN_COMMON, common_scores

    paths = {r.id: r.path for r in registry.list(include_failed=False) if r.id in set(curve["run"])}
    common = guarded(lambda: common_scores(paths, split="validation"))
    if common is not None and common.n >= MIN_COMMON:
        curve["val_macro_f1"] = curve["run"].map(common.scores.set_index("run")["macro-F1"])
        common_note = (f"Every point is scored on the same {common.n} validation tasks, the ones all these runs "
                       "were measured on.")
    else:
        common_note = ("Each point is scored on its own run's validation set: these runs share "
                       f"{common.n if common is not None else 0} validation tasks, too few to compare them on "
                       "(a re-split, or runs from before tasks kept their splits).")
if curve["labels"].nunique() < 2:
    # One label count is a single dot on the axis and a target slider that can forecast nothing: say what is missing.
    if curve.empty:
        st.info(f"No finished training run yet: {NEED_TWO}")
    else:
        best = curve.loc[curve["val_macro_f1"].idxmax()]
        runs = "1 run" if len(curve) == 1 else f"{len(curve)} runs"
        st.info(f"{runs} so far, on {int(best['labels']):,} training labels (validation macro-F1 "
                f"{best['val_macro_f1']:.3f}, `{best['run']}`): {NEED_TWO}")
else:
    st.altair_chart(alt.Chart(curve).mark_line(point=True).encode(
        x=alt.X("labels:Q", title="training labels", axis=alt.Axis(format="d", tickMinStep=1)),
        y=alt.Y("val_macro_f1:Q", title="validation macro-F1"),
        tooltip=["run", alt.Tooltip("labels:Q", format="d"), alt.Tooltip("val_macro_f1:Q", format=".3f")]),
        width="stretch")
    st.caption(common_note)
    target = st.slider("Target validation macro-F1", 0.5, 0.99, 0.9, 0.01)
    forecast = guarded(lambda: fit_learning_curve(curve["labels"], curve["val_macro_f1"], target=target))
    if forecast is not None:
        st.info(forecast.message)
