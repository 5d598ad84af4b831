"""Train: one click trains a LoRA adapter on the current labels, as a background job with live progress."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from studio.app.state import guarded, start_job, workspace
from training.metrics import model_choice_line
from training.runs import run_metrics

#: TensorBoard's default smoothing. One logging step's loss is noisy (an epoch's last batch may hold 2 rows), so
#: the raw curve is drawn faintly under its exponential moving average.
EMA_WEIGHT = 0.6
RAW, SMOOTH, VAL = "train (raw)", "train (smoothed)", "validation"
F1, ACC = "validation macro-F1", "validation accuracy"
MIN_POINTS_TO_CLIP = 10


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


def scores_chart(scores: pd.DataFrame) -> alt.LayerChart:
    """Validation macro-F1 (solid, circles) and accuracy (dashed, squares), hollow so that both show where they
    meet: the two are often nearly equal, and colour alone would hide one under the other."""
    base = alt.Chart(scores).encode(
        x="step:Q", y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title=None),
        color=alt.Color("series:N", title=None, scale=alt.Scale(domain=[F1, ACC], range=["#0068c9", "#29b09d"])),
        tooltip=["series:N", "step:Q", alt.Tooltip("value:Q", format=".3f")])
    lines = base.mark_line().encode(strokeDash=alt.StrokeDash(
        "series:N", title=None, scale=alt.Scale(domain=[F1, ACC], range=[[1, 0], [6, 4]])))
    points = base.mark_point(filled=False, size=80, strokeWidth=2).encode(shape=alt.Shape(
        "series:N", title=None, scale=alt.Scale(domain=[F1, ACC], range=["circle", "square"])))
    return alt.layer(lines, points)


st.title("Train")
ws = workspace()
st.caption("Syncs with Label Studio (or uses the newest snapshot if it is unreachable), curates with the saved "
           "settings (Curate page), and trains in a separate process: closing this tab does not stop it.")

if st.button("Train on current labels", icon=":material/rocket_launch:", type="primary"):
    chosen = guarded(lambda: ws.training_snapshot())
    if chosen is None:
        st.stop()
    snapshot, note = chosen
    if note:
        st.warning(note)
    outdated = guarded(lambda: ws.outdated_warning(snapshot))
    if outdated:
        st.warning(outdated)
    start_job(lambda: ws.start_training(snapshot), lambda job: f"Started job {job.id} on snapshot {snapshot.id}.")


@st.fragment(run_every=2.0)
def job_panel() -> None:
    from training.jobs import cancel_job, current_job

    job = current_job(jobs_root=ws.jobs_root)
    if job is None:
        st.write("No training job yet.")
        return
    kind = "cross-validation" if job.kind == "crossval" else "training"
    st.subheader(f"Job `{job.id}` ({kind}): {job.state}")
    if job.active:
        fraction = job.step / job.max_steps if job.max_steps else 0.0
        eta = f", about {job.eta_s:.0f} s left" if job.eta_s else ""
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
        metrics = run_metrics(run.path) if run is not None else {}
        summary = metrics.get("summary", {})
        score = (f" {summary['split']} accuracy {summary['accuracy']:.3f}, macro-F1 {summary['macro_f1']:.3f}."
                 if "macro_f1" in summary else "")
        st.success(f"Finished: run `{job.run_id}` (see Runs).{score} {model_choice_line(metrics)}")
    elif job.state in ("failed", "cancelled"):
        (st.error if job.state == "failed" else st.warning)(
            f"{job.state.capitalize()}: {job.error or 'stopped on request'}. The previous model is untouched.")
        if job.traceback:
            with st.expander("Details"):
                st.code(job.traceback)
    loss, top = loss_frame(job.loss, job.evals)
    scores = [{"step": r.get("step", 0), "value": r[key], "series": f"validation {name}"}
              for r in job.evals for key, name in (("macro_f1", "macro-F1"), ("accuracy", "accuracy"))
              if r.get(key) is not None]
    left, right = st.columns(2)
    if not loss.empty:
        left.markdown("**Loss**")
        left.altair_chart(loss_chart(loss, top=top), width="stretch")
        if top is not None:
            left.caption(f"Faint: the train loss of each logging step (an epoch's last, partial batch is noisy); "
                         f"solid: its moving average (weight {EMA_WEIGHT}). Values above {top:.2f} are drawn at "
                         "the top edge; hover a point for its value.")
    if scores or job.active:
        right.markdown("**Validation scores** (evaluated once per epoch by default)")
    if scores:
        right.altair_chart(scores_chart(pd.DataFrame(scores)), width="stretch")
    elif job.active:
        right.caption("Validation scores appear after the first evaluation (the end of epoch 1)")

job_panel()
