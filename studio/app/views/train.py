"""Train: one click trains a LoRA adapter on the current labels, as a background job with live progress."""

from __future__ import annotations

import json
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from studio.app.state import guarded, safe, start_job, workspace
from training.metrics import RunMetrics, class_scores, entity_scores, model_choice_line
from training.runs import run_metrics

#: TensorBoard's default smoothing. One logging step's loss is noisy (an epoch's last batch may hold 2 rows), so
#: the raw curve is drawn faintly under its exponential moving average.
EMA_WEIGHT = 0.6
RAW, SMOOTH, VAL = "train (raw)", "train (smoothed)", "validation"
F1, ACC = "validation macro-F1", "validation accuracy"
MIN_POINTS_TO_CLIP = 10
#: (eval point key, series name) of the validation scores chart, the headline figure first. A spans run's token
#: accuracy counts words, nearly all "O", so its entity F1 and the precision and recall behind it are drawn.
SCORES = {"classification": (("macro_f1", F1), ("accuracy", ACC)),
          "spans": (("entity_f1", "validation entity F1"), ("precision", "validation precision"),
                    ("recall", "validation recall")),
          # eval points of a spans job that recorded only these two: the mean entity F1 over the types and the
          # share of words tagged right
          "spans_old": (("macro_f1", "validation entity macro-F1"), ("accuracy", "validation word accuracy"))}
DASHES, SHAPES = [[1, 0], [6, 4], [2, 2]], ["circle", "square", "triangle"]
COLORS = ["#0068c9", "#29b09d", "#ff8700"]


def loss_frame(train: list[dict], evals: list[dict]) -> tuple[pd.DataFrame, float | None]:
    """(long frame of step, loss, series; the y-axis top or None). series: RAW (each logged train loss), SMOOTH (its
    EMA) and VAL (one per evaluation). The top is set only when a few points would otherwise stretch the axis: the
    95th percentile of the raw loss x 1.5, raised to the highest validation loss so that one stays whole; never
    with fewer than MIN_POINTS_TO_CLIP raw points, too few to call one of them an outlier."""
    raw = pd.DataFrame([{"step": r.get("step", 0), "loss": r["loss"]} for r in train if r.get("loss") is not None],
                       columns=["step", "loss"])
    val = pd.DataFrame([{"step": r.get("step", 0), "loss": r["loss"]} for r in evals if r.get("loss") is not None],
                       columns=["step", "loss"])
    smooth = raw.assign(loss=raw["loss"].astype(float).ewm(alpha=1 - EMA_WEIGHT, adjust=False).mean())
    parts = [f.assign(series=name) for f, name in ((raw, RAW), (smooth, SMOOTH), (val, VAL)) if not f.empty]
    if not parts:
        return pd.DataFrame(columns=["step", "loss", "series"]), None
    long = pd.concat(parts, ignore_index=True)
    top = None
    if len(raw) >= MIN_POINTS_TO_CLIP:
        # "lower": with few points an interpolated 95th percentile leans on the very spike it should leave out.
        p95 = float(np.percentile(raw["loss"], 95, method="lower"))
        cap = max(p95 * 1.5, val["loss"].max() if not val.empty else 0.0)
        top = cap if long["loss"].max() > cap else None
    return long, top


def loss_chart(long: pd.DataFrame, *, top: float | None) -> alt.Chart:
    """Raw train loss faint, its EMA solid, validation loss as points on a line; y clamped to [0, top] if given."""
    y_scale = alt.Scale(domain=[0, top], clamp=True) if top is not None else alt.Undefined
    colors = {RAW: "#83c9ff", SMOOTH: "#0068c9", VAL: "#ff8700"}  # the raw line a lighter shade of its average
    shown = [k for k in colors if k in set(long["series"])]  # no legend entry for a validation loss not there yet
    return alt.Chart(long).mark_line(point=True).encode(
        x="step:Q", y=alt.Y("loss:Q", scale=y_scale),
        color=alt.Color("series:N", title=None, scale=alt.Scale(domain=shown, range=[colors[k] for k in shown])),
        opacity=alt.condition(alt.datum.series == RAW, alt.value(0.5), alt.value(1.0)),
        tooltip=["series:N", "step:Q", alt.Tooltip("loss:Q", format=".3f")])


def score_frame(evals: list[dict], *, spans: bool) -> tuple[pd.DataFrame, list[str]]:
    """(long frame of step, value, series; the series names in SCORES order) of the validation scores in the eval
    points. spans: a spans job's points (entity F1, precision, recall; see SCORES for older points)."""
    key = "classification" if not spans else ("spans" if any("entity_f1" in r for r in evals) else "spans_old")
    rows = [{"step": r.get("step", 0), "value": r[k], "series": name}
            for r in evals for k, name in SCORES[key] if r.get(k) is not None]
    return pd.DataFrame(rows, columns=["step", "value", "series"]), [name for _, name in SCORES[key]]


def scores_chart(scores: pd.DataFrame, names: list[str] | None = None) -> alt.LayerChart:
    """Validation scores: the first of `names` (default macro-F1, then accuracy) solid with circles, the next dashed
    with squares, a third dotted with triangles, hollow so that all show where they meet: they are often nearly
    equal, and colour alone would hide one under the other."""
    names = names or [F1, ACC]
    base = alt.Chart(scores).encode(
        x="step:Q", y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title=None),
        color=alt.Color("series:N", title=None, scale=alt.Scale(domain=names, range=COLORS[:len(names)])),
        tooltip=["series:N", "step:Q", alt.Tooltip("value:Q", format=".3f")])
    lines = base.mark_line().encode(strokeDash=alt.StrokeDash(
        "series:N", title=None, scale=alt.Scale(domain=names, range=DASHES[:len(names)])))
    points = base.mark_point(filled=False, size=80, strokeWidth=2).encode(shape=alt.Shape(
        "series:N", title=None, scale=alt.Scale(domain=names, range=SHAPES[:len(names)])))
    return alt.layer(lines, points)


def job_task(job) -> str:
    """The task kind of the data a training job learns from (its curated folder's manifest), "" if unknown."""
    try:
        request = json.loads((job.folder / "request.json").read_text(encoding="utf-8"))
        manifest = json.loads((Path(request["curated"]) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, KeyError, TypeError, ValueError):
        return ""
    return str(manifest.get("task", ""))


st.title("Train")
ws = workspace()
st.caption("Syncs with Label Studio (or uses the newest snapshot if it is unreachable), curates with the saved "
           "settings (Curate page), and trains in a separate process: closing this tab does not stop it.")

if st.button("Train on current labels", icon=":material/rocket_launch:", type="primary"):
    chosen = guarded(lambda: ws.training.training_snapshot())
    if chosen is None:
        st.stop()
    snapshot, note = chosen
    if note:
        st.warning(safe(note))
    outdated = guarded(lambda: ws.review.outdated_warning(snapshot))
    if outdated:
        st.warning(safe(outdated))
    start_job(lambda: ws.training.start_training(snapshot),
              lambda job: f"Started job {job.id} on snapshot {snapshot.id}.")


@st.fragment(run_every=2.0)
def job_panel() -> None:
    from training.jobs import cancel_job, current_job

    job = current_job(jobs_root=ws.jobs_root)
    if job is None:
        st.write("No training job yet.")
        return
    kind = "cross-validation" if job.kind == "crossval" else "training"
    task = job_task(job) if job.kind != "crossval" else ""
    spans, generation = task == "spans", task == "generation"
    evals = job.evals
    st.subheader(f"Job `{job.id}` ({kind}): {job.state}")
    if job.active:
        fraction = job.step / job.max_steps if job.max_steps else 0.0
        eta = f", about {job.eta_s:.0f} s left" if job.eta_s else ""
        eta += f", {job.tokens_per_s:.0f} tokens/s" if job.tokens_per_s else ""
        st.progress(min(1.0, fraction), text=f"{job.phase or 'training'}: step {job.step}/{job.max_steps}, "
                                             f"epoch {job.epoch:.2f}{eta}" if job.max_steps else
                    f"{job.phase or 'preparing'}: loading the model and the data ...")
        if st.button("Cancel", key=f"cancel-{job.id}"):
            guarded(lambda: cancel_job(job.id, jobs_root=ws.jobs_root, wait_s=0))
            st.info("Cancel requested; the job stops at the next step. The current model stays as it is.")
    elif job.state == "succeeded" and job.kind == "crossval":
        st.success("Finished: the cross-validated probabilities are stored; run the quality checks to use them.")
    elif job.state == "succeeded":
        from training.runs import RunRegistry

        run = guarded(lambda: RunRegistry(ws.runs_root).get(job.run_id))
        metrics = RunMetrics.from_json(run_metrics(run.path) if run is not None else {})
        if metrics.is_generation:
            score = ""
        elif metrics.is_spans:
            spans = True
            score = f" {metrics.split} {entity_scores(metrics.summary)}."
            # The run's own record of the evaluations holds every entity figure, whatever the job status kept.
            evals = metrics.curve.get("eval") or evals
        else:
            score = (f" {metrics.split} {class_scores(metrics.summary)}." if metrics.summary.macro_f1 is not None
                     else "")
        st.success(f"Finished: run `{job.run_id}` (see Runs).{score} {model_choice_line(metrics)}")
    elif job.state in ("failed", "cancelled"):
        (st.error if job.state == "failed" else st.warning)(
            f"{job.state.capitalize()}: {job.error or 'stopped on request'}. The previous model is untouched.")
        if job.traceback:
            with st.expander("Details"):
                st.code(job.traceback)
    loss, top = loss_frame(job.loss, evals)
    scores, names = score_frame(evals, spans=spans)
    left, right = st.columns(2)
    if not loss.empty:
        left.markdown("**Loss**")
        left.altair_chart(loss_chart(loss, top=top), width="stretch")
        if top is not None:
            left.caption(f"Faint: the train loss of each logging step (an epoch's last, partial batch is noisy); "
                         f"solid: its moving average (weight {EMA_WEIGHT}). Values above {top:.2f} are drawn at "
                         "the top edge; hover a point for its value.")
    if generation:
        right.caption("An answer model is validated by its loss on the validation answers (the orange points on "
                      "the loss chart; training stops early when it stops falling). After training, the base and "
                      "the fine-tuned model answer held-out prompts: ROUGE-L, chrF and embedding similarity are on "
                      "the Runs page.")
        return
    if not scores.empty or job.active:
        right.markdown("**Validation scores** (evaluated once per epoch by default)")
    if not scores.empty:
        right.altair_chart(scores_chart(scores, names), width="stretch")
    elif job.active:
        right.caption("Validation scores appear after the first evaluation (the end of epoch 1)")

job_panel()
