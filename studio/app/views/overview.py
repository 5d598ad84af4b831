"""Overview: is Label Studio reachable, how much is labeled, by whom, which classes, and the snapshot history."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from studio.app.charts import LABEL_LIMIT, utc_seconds
from studio.app.state import (assess_in_background, guarded, latest_snapshot, md, progress_callback, safe, show_error,
                              workspace)
from studio.errors import LabelStudioAuthError, LabelStudioUnreachable, StudioError
from studio.records import problems

HISTORY_COLUMNS = {"snapshot_id": "id", "created_at": "created (UTC)", "tasks": "tasks", "labeled_tasks": "labeled",
                   "submitted_annotations": "annotations", "sync_mode": "mode", "parent": "parent"}
HISTORY_HELP = {"labeled_tasks": "tasks with at least one submitted annotation",
                "submitted_annotations": "submitted annotations (skipped ones not counted)",
                "sync_mode": "full: every task pulled; incremental: only tasks changed since the parent",
                "parent": "the snapshot an incremental sync started from"}


def bar_height(bars: int) -> int:
    """Chart height in px for a horizontal bar chart with `bars` bars: ~24 px a bar, and room for the x axis and
    its title (with less, two bars of a two-annotator project squeeze into a sliver)."""
    return 80 + 24 * max(bars, 2)


st.title("Overview")
ws = workspace()

offline = False
try:
    user = ws.client.check()
    project = ws.project()
except StudioError as exc:
    st.subheader(f"Label Studio at {ws.url}")
    show_error(exc)
    # What was synced before is still here: show it, without the Sync button. Not when Label Studio answers but
    # the project is missing: the error above says what to do.
    stored = ws.stored_project() if isinstance(exc, (LabelStudioUnreachable, LabelStudioAuthError)) else None
    if stored is None:
        st.stop()
    project, offline = stored, True
    st.caption(f"Below: the newest stored snapshot of project **{md(project.title)}** (id {project.id}).")
else:
    st.caption(f"Label Studio: [{ws.url}]({ws.url}/projects/{project.id}) · project **{md(project.title)}** "
               f"(id {project.id}) · signed in as {user.get('email')}")

col_sync, col_full = st.columns([1, 4])
if not offline and col_sync.button("Sync", icon=":material/sync:", type="primary",
                                   help="Pull every task and annotation into a new snapshot"):
    bar = st.progress(0.0, text="Syncing ...")
    result = guarded(lambda: ws.sync(progress=progress_callback(bar, "Sync")))
    if result is not None:
        bar.empty()
        if result.created:
            st.success(f"New snapshot {result.snapshot.id} ({result.mode} sync, {result.fetched_tasks} tasks fetched). "
                       "Its quality report is being computed in the background: the Quality page shows its progress.")
            assess_in_background(ws, result.snapshot)
            outdated = guarded(lambda: ws.review.outdated_warning(result.snapshot))
            if outdated:
                st.warning(safe(outdated))
        else:
            st.info(f"Nothing changed since snapshot {result.snapshot.id}.")

snapshot = latest_snapshot(ws, project.id)
if snapshot is None:
    st.info(f"Label Studio has {project.task_number} tasks. No snapshot yet: press **Sync** to pull them in.")
    st.stop()

counts = snapshot.manifest["counts"]
# Shares and skip counts are facts about this snapshot, not changes: a caption, never a metric delta (its arrow
# reads as "went up").
share = f"{counts['labeled_tasks'] / max(counts['tasks'], 1):.0%} of tasks"
skipped = f"{counts['cancelled_annotations']:,} skipped (not counted)"
c1, c2, c3, c4 = st.columns(4)
c1.metric("Tasks", f"{counts['tasks']:,}", help="in the newest snapshot")
c2.metric("Labeled tasks", f"{counts['labeled_tasks']:,}", help="tasks with at least one submitted annotation")
c2.caption(share)
c3.metric("Annotations", f"{counts['submitted_annotations']:,}",
          help="submitted annotations; skipped ones (the annotator pressed Skip) are not counted")
c3.caption(skipped)
c4.metric("Annotators", counts["annotators"])
st.caption(f"Snapshot `{snapshot.id}` taken {snapshot.manifest['created_at'][:19].replace('T', ' ')} UTC "
           f"({snapshot.manifest['sync_mode']} sync)")

left, right = st.columns(2)
with left:
    st.subheader("Progress per annotator")
    annotations = snapshot.annotations
    per = (annotations.assign(status=annotations["was_cancelled"].map({True: "skipped", False: "submitted"}))
           .groupby(["annotator", "status"]).size().rename("annotations").reset_index())
    if per.empty:
        st.write("No annotations yet.")
    else:
        # A legend with one entry ("submitted") says nothing: show it only when some annotations were skipped.
        legend = alt.Legend(orient="bottom") if per["status"].nunique() > 1 else None
        st.altair_chart(alt.Chart(per).mark_bar().encode(
            x=alt.X("annotations:Q", title="annotations"),
            y=alt.Y("annotator:N", sort="-x", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
            color=alt.Color("status:N", legend=legend),
        ).properties(height=bar_height(per["annotator"].nunique())), width="stretch")
kind = snapshot.schema.kind
labeled = snapshot.labeled()
with right:
    if kind.has_classes:
        st.subheader("Class distribution")
        # Tasks per class the tasks contain (one per class a multi-label task chose, per entity type a sentence has).
        values = pd.Series(kind.row_classes(labeled[kind.target_column]), dtype=object).explode().dropna()
        dist = values.value_counts().rename_axis("class").rename("tasks").reset_index()
        if dist.empty:
            st.write("No usable labels yet.")
        else:
            st.altair_chart(alt.Chart(dist).mark_bar().encode(
                x=alt.X("tasks:Q"), y=alt.Y("class:N", sort="-x", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
            ).properties(height=bar_height(len(dist))), width="stretch")
    else:  # answers have no classes: how long they are
        st.subheader("Answer length")
        words = pd.DataFrame({"words": labeled[kind.target_column].map(lambda a: len(str(a).split()))})
        if words.empty:
            st.write("No answered prompts yet.")
        else:
            st.altair_chart(alt.Chart(words).mark_bar().encode(
                x=alt.X("words:Q", bin=alt.Bin(maxbins=30), title="words in the answer in force"),
                y=alt.Y("count()", title="prompts")), width="stretch")
            st.caption(f"Median {words['words'].median():.0f} words; {int((labeled['n_annotators'] > 1).sum())} "
                       "prompts answered by several experts.")

st.subheader("Validation report")
report = snapshot.validation
if report.empty:
    st.success("No problems: every task has text and every label is in the config.")
else:
    summary = report["problem"].value_counts().rename_axis("problem").rename("count").reset_index()
    summary["meaning"] = summary["problem"].map(problems(snapshot.schema))
    st.dataframe(summary, hide_index=True, width="stretch")
    with st.expander(f"All {len(report)} rows (nothing is dropped silently)"):
        st.dataframe(report, hide_index=True, width="stretch")

st.subheader("Snapshot history")
history = ws.store.history(project.id)
# Only the columns a person compares across snapshots, timestamps to the second, no "None" for the first parent.
shown = history.assign(created_at=history["created_at"].map(utc_seconds), parent=history["parent"].fillna(""))
st.dataframe(shown, hide_index=True, width="stretch", column_order=list(HISTORY_COLUMNS),
             column_config={name: st.column_config.Column(label, help=HISTORY_HELP.get(name))
                            for name, label in HISTORY_COLUMNS.items()})
