"""Train: one click trains a LoRA adapter on the current labels, as a background job with live progress."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from studio.app.state import guarded, latest_snapshot, run_metrics, show_error, start_job, workspace
from studio.errors import StudioError
from training.metrics import model_choice_line

st.title("Train")
ws = workspace()
st.caption("Syncs with Label Studio (or uses the newest snapshot if it is unreachable), curates with the saved "
           "settings (Curate page), and trains in a separate process: closing this tab does not stop it.")

if st.button("Train on current labels", icon=":material/rocket_launch:", type="primary"):
    try:
        project = ws.project()
        snapshot = ws.sync().snapshot
    except StudioError as exc:
        snapshot = latest_snapshot(ws)
        if snapshot is None:
            show_error(exc)
            st.stop()
        st.warning(f"Could not sync ({str(exc).splitlines()[0]}); training on the newest snapshot {snapshot.id}.")
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
    loss = [{"step": r.get("step", 0), "loss": r["loss"], "series": "train"} for r in job.loss if "loss" in r]
    loss += [{"step": r.get("step", 0), "loss": r["loss"], "series": "validation"}
             for r in job.evals if r.get("loss") is not None]
    scores = [{"step": r.get("step", 0), "value": r[key], "series": f"validation {name}"}
              for r in job.evals for key, name in (("macro_f1", "macro-F1"), ("accuracy", "accuracy"))
              if r.get(key) is not None]
    left, right = st.columns(2)
    if loss:
        left.markdown("**Loss**")
        left.altair_chart(alt.Chart(pd.DataFrame(loss)).mark_line(point=True).encode(
            x="step:Q", y="loss:Q", color=alt.Color("series:N", title=None)), width="stretch")
    if scores:
        right.markdown("**Validation scores** (evaluated once per epoch by default)")
        right.altair_chart(alt.Chart(pd.DataFrame(scores)).mark_line(point=True).encode(
            x="step:Q", y=alt.Y("value:Q", scale=alt.Scale(domain=[0, 1]), title=None),
            color=alt.Color("series:N", title=None)), width="stretch")


job_panel()
