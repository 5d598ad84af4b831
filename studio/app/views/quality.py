"""Quality: the label issues as a review queue, charts of where labels go wrong and who disagrees, and actions
(keep / relabel / exclude, undo, send back to Label Studio) that never overwrite what annotators wrote."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from studio.app.charts import LABEL_LIMIT, heatmap, readable_columns
from studio.app.annotators import render_annotators
from studio.app.state import (author_field, download_table, flash, guarded, md, quality_report, safe, show_error,
                              show_flash, snapshot_or_stop, start_job, workspace)
from studio.errors import StudioError
from studio.rereview import OUTCOMES
from studio.review import (Decision, auto_fix_plan, decision_history, decision_text, effective_decisions,
                           flagged_label_issues, review_requests,
                           suggestion_track_record, track_record_by, track_record_calibration, track_record_line)

st.title("Label quality")
ws = workspace()
project, snapshot = snapshot_or_stop(ws)
log = ws.decisions(project.id)
author = author_field()
kind = snapshot.schema.kind
if not kind.supports("quality"):
    st.warning(f"The label-quality checks are not available for {kind.description} projects yet; Curate, Train and "
               "Active learning work for them.")
    st.stop()
if kind.name in ("spans", "generation"):
    from studio.app import gen_review, span_review

    (span_review if kind.name == "spans" else gen_review).render(ws, snapshot, log, author)
    st.stop()

assessment = quality_report(ws, snapshot, checks="cleanlab label issues, outliers, near-duplicates, class "
                            "imbalance, and multi-annotator consensus (CROWDLAB)")
if assessment is None:
    st.stop()
for warning in assessment.meta.get("warnings", []):
    st.warning(safe(warning))
model = assessment.meta["model"]
if assessment.meta.get("external"):
    model += " (external = the fine-tuned model, cross-validated)" if model == "external" else \
        " (with the fine-tuned model's cross-validated probabilities among the candidates)"
texts_meta, view, choice = (assessment.meta.get(k) or {} for k in ("texts", "view", "choice"))
length = (f" · texts of {texts_meta['median_words']} words (median; p90 {texts_meta['p90_words']})"
          if texts_meta.get("median_words") is not None else "")
st.caption(f"Snapshot `{snapshot.id}` · {assessment.meta['n_labeled']} labeled tasks{length} · out-of-sample "
           f"probabilities from `{model}`")
if choice or view:
    with st.expander("Why these probabilities"):
        if view.get("why"):
            st.write(safe(f"How the texts are seen: {view['why']}" + (f"; long texts {view['long_texts']}."
                                                                     if view.get("long_texts") else ".")))
        if choice.get("rule"):
            st.write(safe(choice["rule"]))
        if choice.get("candidates"):
            st.dataframe(pd.DataFrame(choice["candidates"]).T.rename_axis("candidate").reset_index(),
                         hide_index=True, width="stretch")

outdated = guarded(lambda: ws.review.outdated_warning(snapshot))
if outdated:
    st.warning(safe(outdated))
issues = assessment.issues
decided = effective_decisions(log.read()).set_index("task_id")
rereviews = guarded(lambda: ws.review.rereview_outcomes(snapshot))  # what came back from the "Needs review" tab
in_label_studio = {} if rereviews is None else dict(zip(rereviews["task_id"], rereviews["outcome"]))
flagged = issues[issues["is_issue"]]
c1, c2, c3, c4 = st.columns(4)
for col, kind in zip((c1, c2, c3), ("label_issue", "near_duplicate", "outlier")):
    col.metric(kind.replace("_", " "), int((flagged["issue_type"] == kind).sum()))
c4.metric("decided", len(decided))


QUEUE_COLUMNS = {
    "task_id": st.column_config.NumberColumn("task", format="%d", width="small"),
    "given_label": "given label", "suggested_label": "suggested label",
    "confidence": st.column_config.NumberColumn("confidence", format="%.2f", width="small",
                                                help="the model's out-of-sample probability of its suggestion"),
    "score": st.column_config.NumberColumn("quality", format="%.3f", width="small",
                                           help="label quality score: low = the given label is likely wrong"),
    "text": st.column_config.TextColumn("text", width="large"),
    "decision": st.column_config.TextColumn("decision", width="medium",
                                            help="the review decision in force for the task"),
    "issue_type": "issue", "re_review": "in Label Studio",
    "details": st.column_config.TextColumn("details", help="what the check saw (e.g. a near-duplicate's group)"),
}


def auto_fix_section() -> None:
    """Bulk relabel of the flagged label issues the model is sure about; the rest can go to Label Studio."""
    st.caption("The model's out-of-sample probability of its suggestion is a good guide to whether the suggestion is "
               "right: at 0.9, nearly every suggestion taken was right on banking77 with 20% planted noise, and "
               "most were on convabuse (figures in the README's Benchmarks). Each fix is an ordinary, undoable "
               "relabel decision with its reason in the note; tasks someone already decided are left alone.")
    threshold = st.slider("Minimum probability of the suggestion", 0.05, 1.0,
                          float(ws.cfg.quality.auto_fix_confidence), 0.01, key="auto_fix_threshold")
    only = st.multiselect("Only these given labels (empty = every class)", assessment.meta["classes"],
                          key="auto_fix_classes")
    # The log is read again: a decision taken in the review queue earlier in this run counts already.
    decisions = log.read()
    fix, rest = auto_fix_plan(issues, decisions, min_confidence=threshold, classes=only)
    if fix.empty and rest.empty:
        st.info("Every flagged label issue has a decision already.")
    else:
        auto_fix_controls(fix, rest, threshold, only)
    track_record(suggestion_track_record(issues, decisions, rereviews), threshold)


def auto_fix_controls(fix: pd.DataFrame, rest: pd.DataFrame, threshold: float, only: list[str]) -> None:
    """How many auto-fix takes at this threshold (a histogram), and the button."""
    pending = pd.concat([fix, rest])
    bins = pending.assign(confidence=pending["confidence"].fillna(0.0),
                          fix=pending["task_id"].isin(fix["task_id"]).map({True: "auto-fix", False: "for a person"}))
    bars = alt.Chart(bins).mark_bar().encode(
        x=alt.X("confidence:Q", bin=alt.Bin(step=0.05, extent=[0, 1]), scale=alt.Scale(domain=[0, 1]),
                title="model's probability of its suggestion (0 = no suggestion)"),
        y=alt.Y("count():Q", title="flagged label issues", axis=alt.Axis(tickMinStep=1)),
        color=alt.Color("fix:N", title=None, scale=alt.Scale(domain=["auto-fix", "for a person"],
                                                             range=["#2e7d32", "#9e9e9e"])))
    rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(strokeDash=[4, 4]).encode(x="threshold:Q")
    st.altair_chart(bars + rule, width="stretch")
    st.write(f"**{len(fix)}** of {len(pending)} undecided flagged label issues have a suggestion the model gives "
             f"{threshold:.2f} or more; the other {len(rest)} stay in the queue for a person.")
    send_rest = st.checkbox(f"Also send the other {len(rest)} to Label Studio for re-review", disabled=rest.empty)
    if st.button(f"Relabel {len(fix)} to the suggestion" + (f" and send {len(rest)}" if send_rest else ""),
                 disabled=fix.empty and not send_rest, key="auto_fix"):
        done = guarded(lambda: ws.review.auto_fix(snapshot, author=author, min_confidence=threshold, classes=only,
                                           send_rest=send_rest))
        if done is not None:
            sent = f" Sent {done[2]} to the 'Needs review' tab in Label Studio." if send_rest else ""
            st.success(f"Relabelled {len(done[0])} tasks to the suggestion (appended decisions; annotations are "
                       f"untouched).{sent}")


def track_record(record: pd.DataFrame, threshold: float) -> None:
    """What people did with the suggestions they reviewed by hand, per probability band and per given label: the
    check of the auto-fix threshold on this data."""
    st.markdown("**Track record on this data**")
    st.write(track_record_line(record, threshold))
    if record.empty:
        st.caption("Once people have reviewed flagged labels by hand (the queue, or one by one), this shows how often "
                   "they took the model's suggestion, per probability and per given label.")
        return
    bands = track_record_calibration(record).assign(mid=lambda b: b["probability"] + 0.05)
    base = alt.Chart(bands).encode(
        x=alt.X("mid:Q", scale=alt.Scale(domain=[0, 1]), title="model's probability of its suggestion (band)"),
        # A little headroom above 1 and below 0: a band where people took every suggestion is a whole point.
        y=alt.Y("share:Q", scale=alt.Scale(domain=[-0.05, 1.05], nice=False), title="share people took",
                axis=alt.Axis(values=[0, 0.25, 0.5, 0.75, 1], format="%")),
        tooltip=["probability", "reviewed", "taken", alt.Tooltip("share:Q", format=".0%")])
    size = alt.Size("reviewed:Q", scale=alt.Scale(zero=False),
                    legend=alt.Legend(orient="bottom", title="labels reviewed", format="d", tickMinStep=1))
    points = base.mark_line() + base.mark_circle(opacity=0.9).encode(size=size)
    diagonal = alt.Chart(pd.DataFrame({"p": [0.0, 1.0]})).mark_line(strokeDash=[2, 2], color="#9e9e9e").encode(
        x="p:Q", y="p:Q")
    rule = alt.Chart(pd.DataFrame({"threshold": [threshold]})).mark_rule(strokeDash=[4, 4]).encode(x="threshold:Q")
    left, right = st.columns(2)
    left.altair_chart(diagonal + points + rule, width="stretch")
    left.caption("On the dotted diagonal the probabilities are calibrated: the share taken equals the probability.")
    right.dataframe(track_record_by(record, "given_label"), hide_index=True, width="stretch",
                    column_config={"share": st.column_config.ProgressColumn("share taken", min_value=0, max_value=1,
                                                                            format="percent")})
    right.caption("Per given label, worst first: where people often reject the suggestions, limit auto-fix to "
                  "the other labels (the multiselect above) and review these by hand.")


def rereview_section() -> None:
    """The tasks sent to Label Studio's "Needs review" tab and what annotators did with them, as of this snapshot."""
    if rereviews is None or rereviews.empty:
        st.info("Nothing sent for re-review yet: select rows above and send them, or auto-fix with the rest sent.")
        return
    counts = rereviews["outcome"].value_counts()
    for col, name in zip(st.columns(len(OUTCOMES)), OUTCOMES):
        col.metric(name, int(counts.get(name, 0)))
    st.caption(f"As of snapshot `{snapshot.id}` (sync for newer reviews). A review is an annotation of the task that "
               "is new or edited since the snapshot it was sent from; it counts in the auto-fix track record.")
    st.dataframe(rereviews[["task_id", "given_label", "suggested_label", "confidence", "outcome", "new_label",
                            "reviewed_by", "sent_at"]], hide_index=True, width="stretch")


def one_by_one() -> None:
    """Prodigy-style review: the worst undecided flagged label issue, one at a time, one click per decision."""
    label_issues = flagged_label_issues(issues)
    pending = flagged_label_issues(issues, excluding=decided.index)  # no decision can come before this in a run
    skipped: list = st.session_state.setdefault("skipped_tasks", [])
    last = st.session_state.get("last_decision")
    if last:
        c1, c2 = st.columns([5, 1])
        c1.caption(last["message"])
        if c2.button("Undo", key="one_undo", shortcut="U", help="Keyboard: U"):
            log.undo_last(last["task_id"], author=last["author"], snapshot_id=snapshot.id)
            del st.session_state["last_decision"]
            st.rerun()
    done = len(label_issues) - len(pending)
    st.progress(done / len(label_issues) if len(label_issues) else 1.0,
                text=f"{done} of {len(label_issues)} flagged label issues decided")
    todo = pending[~pending["task_id"].isin(skipped)].sort_values("score", kind="stable")
    if todo.empty:
        st.success("No undecided flagged label issue left" + (f" but the {len(skipped)} you skipped." if skipped
                                                               else "."))
        if skipped and st.button("Show the skipped ones again", key="one_unskip"):
            skipped.clear()
            st.rerun()
        return
    row = todo.iloc[0]
    task = int(row["task_id"])
    suggestion = str(row["suggested_label"] or "")
    with st.container(border=True):
        sent = f" · sent to Label Studio for re-review: {in_label_studio[task]}" if task in in_label_studio else ""
        st.caption(f"Task {task} · label quality {row['score']:.3f} (lower = more likely wrong) · {len(todo) - 1} "
                   f"more after this one{sent}")
        st.code(str(row["text"]), language=None, wrap_lines=True)
        people = row["annotators"]
        people = ", ".join(map(str, people)) if isinstance(people, (list, tuple, np.ndarray)) else str(people)
        st.markdown(f"Given: **{md(row['given_label'])}** (by {md(people)})  \n"
                    + (f"Suggested: **{md(suggestion)}**, the model gives it {row['confidence']:.0%}" if suggestion
                       else "The model has no other label to suggest."))
    note = st.text_input("Note (optional)", key=f"one_note_{task}")
    b1, b2, b3, b4 = st.columns(4)
    choice: tuple[str, str | None] | None = None
    if b1.button(f"Relabel to {md(suggestion)}" if suggestion else "Relabel to the suggestion", type="primary",
                 disabled=not suggestion, key="one_accept", shortcut="A", help="Keyboard: A (accept the suggestion)"):
        choice = ("relabel", suggestion)
    if b2.button(f"Keep {md(row['given_label'])}", key="one_keep", shortcut="K", help="Keyboard: K"):
        choice = ("keep", None)
    if b3.button("Exclude", key="one_exclude", shortcut="X", help="Keyboard: X"):
        choice = ("exclude", None)
    if b4.button("Skip", key="one_skip", shortcut="S", help="Keyboard: S"):
        skipped.append(task)
        st.rerun()
    other = st.selectbox("…or relabel to another class", assessment.meta["classes"], index=None,
                         key=f"one_other_{task}")
    if st.button("Relabel to this class", disabled=other is None, key="one_other_apply"):
        choice = ("relabel", other)
    if choice is None:
        return
    try:
        log.append([Decision(task, choice[0], author, snapshot.id, label=choice[1], note=note)],
                   classes=assessment.meta["classes"])
    except StudioError as exc:
        show_error(exc)
        return
    st.session_state["last_decision"] = {"task_id": task, "author": author, "message": f"Task {task}: {choice[0]}"
                                         + (f" to {choice[1]}" if choice[1] else "") + " (recorded)."}
    st.rerun()


tab_queue, tab_one, tab_charts, tab_people = st.tabs(
    ["Review queue", "One by one", "Where labels go wrong", "Annotators"], key="quality_tab", on_change="rerun")
with tab_one:
    one_by_one()
with tab_queue:
    show_flash()  # what the last action did, shown with the state it left
    f1, f2, f3, f4 = st.columns(4)
    types = f1.multiselect("Issue type", sorted(issues["issue_type"].unique()), default=["label_issue"])
    classes = f2.multiselect("Given label", sorted(issues["given_label"].dropna().unique()))
    who = f3.text_input("Annotator contains")
    only_flagged = f4.toggle("Flagged only", value=True)
    queue = issues[issues["issue_type"].isin(types)] if types else issues
    if only_flagged:
        queue = queue[queue["is_issue"]]
    if classes:
        queue = queue[queue["given_label"].isin(classes)]
    if who:
        queue = queue[queue["annotators"].astype(str).str.contains(who, case=False)]
    said = {int(t): decision_text(d) for t, d in decided.iterrows()}
    queue = queue.sort_values("score").assign(decision=queue["task_id"].map(lambda t: said.get(t, "")),
                                              re_review=queue["task_id"].map(lambda t: in_label_studio.get(t, "")))
    view = queue[["task_id", "decision", "given_label", "suggested_label", "confidence", "score", "text",
                  "annotators", "issue_type", "re_review", "details"]]
    picked = st.dataframe(view, hide_index=True, width="stretch", on_select="rerun", selection_mode="multi-row",
                          key="queue", column_config=QUEUE_COLUMNS)
    chosen_ids = set(view.iloc[picked.selection.rows]["task_id"]) if picked and picked.selection.rows else set()
    typed = st.multiselect("…or pick task ids", view["task_id"].tolist(), key="picked_ids")
    every = st.checkbox(f"Every row the filters show ({view['task_id'].nunique()} tasks)", key="pick_all",
                        help="Act on the whole filtered view, e.g. every flagged label of one class")
    rows = (view if every else view[view["task_id"].isin(chosen_ids | set(typed))]).drop_duplicates("task_id")
    st.caption(f"{len(queue)} rows, worst first. Select rows (click the left edge), pick ids, or take every row "
               "the filters show; then act.")
    d1, d2 = st.columns(2)
    with d1:
        download_table(f"Download these {len(view)} rows (CSV)", view.assign(annotators=view["annotators"].astype(str)),
                       file_name=f"issues-{snapshot.id}.csv", key="download_issues")
    with d2:
        download_table("Download the decision log (CSV)", decision_history(log.read()),
                       file_name=f"decisions-project-{snapshot.manifest['project_id']}.csv", key="download_decisions")
    with st.form("act"):
        a1, a2, a3 = st.columns([2, 2, 3])
        action = a1.radio("Action", ["keep", "relabel to suggestion", "relabel to", "exclude"], horizontal=False)
        other = a2.selectbox("Class (for 'relabel to')", assessment.meta["classes"])
        note = a3.text_input("Note (optional)")
        apply = st.form_submit_button(f"Apply to {len(rows)} selected", disabled=rows.empty)
    if apply:
        decisions = []
        for r in rows.itertuples(index=False):
            if action.startswith("relabel"):
                label = r.suggested_label if action == "relabel to suggestion" else other
                decisions.append(Decision(int(r.task_id), "relabel", author, snapshot.id, label=label, note=note))
            else:
                decisions.append(Decision(int(r.task_id), action, author, snapshot.id, note=note))
        try:
            log.append(decisions, classes=assessment.meta["classes"])
            flash(f"Recorded {len(decisions)} decisions (appended; annotations are untouched).")
        except StudioError as exc:
            show_error(exc)
    decided_rows = rows[rows["task_id"].isin(decided.index)]
    to_send = rows
    if len(decided_rows):
        first = int(decided_rows["task_id"].iloc[0])
        st.warning(f"{len(decided_rows)} of the selected tasks already have a decision in force (e.g. task {first}: "
                   f"{safe(said.get(first, ''))}). An annotator's new answer in Label Studio does not replace a "
                   "decision: undo it first if it should.")
        if not st.checkbox("Send the decided ones too", key="send_decided"):
            to_send = rows[~rows["task_id"].isin(decided.index)]
    b1, b2 = st.columns(2)
    if b1.button(f"Undo the decision on {len(rows)} selected", disabled=rows.empty):
        undone = [log.undo_last(int(t), author=author or "unknown", snapshot_id=snapshot.id) for t in rows["task_id"]]
        flash(f"Undid {sum(u is not None for u in undone)} decisions.")
    if b2.button(f"Send {len(to_send)} selected to Label Studio for re-review", disabled=to_send.empty):
        sent = guarded(lambda: ws.review.send_for_review(snapshot, review_requests(to_send)))
        if sent is not None:
            already = f" ({len(to_send) - sent[0]} were in it already)" if sent[0] < len(to_send) else ""
            flash(f"Sent {sent[0]} tasks: they carry the suggested label as a prediction, are listed in the "
                  f"'Needs review' tab{already} and come round once more in Label Studio's labeling stream, to an "
                  "annotator who has not labeled them. The next sync brings the answers back.")
    with st.expander("Auto-fix: relabel the confident suggestions at once"):
        auto_fix_section()
    with st.expander("Sent to Label Studio: what came back"):
        rereview_section()

with tab_charts:
    left, right = st.columns(2)
    with left:
        st.subheader("Flagged labels per class")
        # Class imbalance flags every task of a rare class: a fact about the class (the table below), not about
        # its labels, so it would only bury the label issues here.
        per_task = flagged[flagged["issue_type"] != "class_imbalance"]
        counts = per_task.groupby(["given_label", "issue_type"]).size().rename("tasks").reset_index()
        if counts.empty:
            st.write("No flagged label, outlier or near-duplicate.")
        else:
            st.altair_chart(alt.Chart(counts).mark_bar().encode(
                x=alt.X("tasks:Q", axis=alt.Axis(tickMinStep=1)),
                y=alt.Y("given_label:N", sort="-x", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
                color=alt.Color("issue_type:N", title=None, legend=alt.Legend(orient="bottom"))), width="stretch")
    with right:
        st.subheader("Given vs predicted (out-of-sample)")
        confusion = assessment.confusion.melt(id_vars="given", var_name="predicted", value_name="count")
        st.altair_chart(heatmap(confusion, x="predicted", y="given", scheme="blues",
                                sort=assessment.meta["classes"]), width="stretch")
    st.subheader("Per class")
    st.dataframe(assessment.class_summary, hide_index=True, width="stretch",
                 column_config=readable_columns(assessment.class_summary))

with tab_people:
    show_flash()
    render_annotators(ws, snapshot, assessment, issues)

@st.fragment(run_every=3.0)
def crossval_status() -> None:
    """The newest job, if it is a cross-validation: live progress, or why it stopped."""
    from training.jobs import current_job

    job = guarded(lambda: current_job(jobs_root=ws.jobs_root))
    if job is None or job.kind != "crossval":
        return
    if job.active:
        st.progress(min(1.0, job.step / job.max_steps) if job.max_steps else 0.0,
                    text=f"Cross-validation, {job.phase}: step {job.step}/{job.max_steps}")
    elif job.state in ("failed", "cancelled"):
        st.warning(f"The last cross-validation job {job.state}: {safe(job.error or 'stopped on request')}")


with st.expander("Better probabilities: cross-validate the fine-tuned model (slow)"):
    st.write(f"Trains the classifier of the Train page {ws.cfg.quality.folds} times, each time without one fold "
             "of this snapshot's labels, so every task gets a prediction from a model that never saw its label; the "
             "labels flagged in the report above are left out of training, as in the checks' own refit. "
             "The checks then compare those probabilities with their own models and use them where they explain "
             "the labels better. It runs in the background like training (one job at a time): minutes on a "
             "GPU, much longer on a CPU. Press **Run quality checks** when it has finished.")
    stored = ws.quality.crossval_meta(snapshot)
    if stored:
        st.caption(f"Stored for this snapshot: {stored.get('folds')} folds of {stored.get('method')} on "
                   f"{stored.get('base_model') or 'the default model'} without {stored.get('excluded', 0)} "
                   f"flagged labels, {stored.get('created', '')}.")
    if st.button("Cross-validate the fine-tuned model", key="crossval"):
        start_job(lambda: ws.quality.start_crossval(snapshot),
                  lambda job: f"Started job {job.id}; follow it here or on the Train page.")
    crossval_status()
