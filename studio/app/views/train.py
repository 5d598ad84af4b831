"""Train: one click trains a LoRA adapter on the current labels, as a background job with live progress."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from studio.app.state import guarded, latest_snapshot, show_error, start_job, workspace
from studio.errors import StudioError

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
                                             f"epoch {job.epoch:.2f}{eta}")
        if st.button("Cancel", key=f"cancel-{job.id}"):
            guarded(lambda: cancel_job(job.id, jobs_root=ws.jobs_root, wait_s=0))
            st.info("Cancel requested; the job stops at the next step. The current model stays as it is.")
    elif job.state == "succeeded" and job.kind == "crossval":
        st.success("Finished: the cross-validated probabilities are stored; run the quality checks to use them.")
    elif job.state == "succeeded":
        st.success(f"Finished: run `{job.run_id}` (see Runs).")
    elif job.state in ("failed", "cancelled"):
        (st.error if job.state == "failed" else st.warning)(
            f"{job.state.capitalize()}: {job.error or 'stopped on request'}. The previous model is untouched.")
        if job.traceback:
            with st.expander("Details"):
                st.code(job.traceback)
    curves = []
    for row in job.loss:
        if "loss" in row:
            curves.append({"step": row.get("step", 0), "value": row["loss"], "series": "train loss"})
    for row in job.evals:
        for key in ("eval_macro_f1", "eval_loss"):
            if key in row:
                curves.append({"step": row.get("step", 0), "value": row[key], "series": key.replace("eval_", "val ")})
    if curves:
        st.altair_chart(alt.Chart(pd.DataFrame(curves)).mark_line(point=True).encode(
            x="step:Q", y="value:Q", color="series:N"), width="stretch")


job_panel()
