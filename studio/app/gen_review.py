"""The Quality page of an instruction -> response project: the generation checks as a review queue (duplicate
and conflicting prompts, length outliers, answers unrelated to their prompt, personal data, experts who disagree,
cleanlab Datalab on the prompts), each flagged task with every expert's answer side by side, and decisions that
never overwrite what an expert wrote: keep, exclude, or use another expert's answer (appended, undoable).

Rendering only: the report comes from ws.quality.assess / assessment (studio/assess_generation.py), decisions are
appended to the project's log (studio/review.py).
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from studio.app.state import quality_report, safe, show_error
from studio.errors import StudioError
from studio.review import Decision, decision_text, effective_decisions


def render(ws, snapshot, log, author: str) -> None:
    report = quality_report(ws, snapshot, checks=(
        "duplicate and near-duplicate prompts, near-duplicates with conflicting answers, length outliers, answers "
        "unrelated to their prompt, personal data, experts' disagreement, and cleanlab Datalab on the prompt "
        "embeddings"))
    if report is None:
        return
    meta = report.meta
    for warning in meta.get("warnings", []):
        st.warning(safe(warning))
    st.caption(f"Snapshot `{snapshot.id}` · {meta['n_tasks']} answered prompts · {meta['n_responses']} answers · "
               f"checks ran in {sum(meta.get('timings', {}).values()):.1f} s")
    decided = effective_decisions(log.read()).set_index("task_id")
    c1, c2, c3 = st.columns(3)
    c1.metric("flagged prompts", int(meta["flagged_tasks"]))
    c2.metric("flags", len(report.issues))
    c3.metric("decided", len(decided))

    queue_tab, checks_tab, datalab_tab = st.tabs(["Review queue", "Checks", "cleanlab Datalab"])
    with checks_tab:
        summary_chart(report.summary)
        st.dataframe(report.summary, hide_index=True, width="stretch")
        st.download_button("Download all flags (CSV)", report.issues.to_csv(index=False).encode(),
                           file_name=f"generation-quality-{snapshot.id}.csv", mime="text/csv")
    with datalab_tab:
        st.caption("cleanlab's Datalab on the prompt embeddings (lower score = more severe).")
        st.dataframe(report.datalab, hide_index=True, width="stretch")
    with queue_tab:
        review_queue(snapshot, report, log, author, decided)


def summary_chart(summary: pd.DataFrame) -> None:
    """Flagged tasks per check, as bars (a person sees at once which check matters here)."""
    if summary.empty:
        return
    chart = alt.Chart(summary).mark_bar().encode(
        x=alt.X("tasks:Q", title="flagged prompts"), y=alt.Y("check:N", sort="-x", title=None),
        tooltip=["check", "description", "flagged", "tasks"])
    st.altair_chart(chart, width="stretch")


def review_queue(snapshot, report, log, author: str, decided: pd.DataFrame) -> None:
    kind = snapshot.schema.kind
    checks = ["all"] + sorted(set(report.issues["check"]))
    check = st.selectbox("Check", checks, key="gen_check")
    rows = report.flagged(None if check == "all" else check)
    if rows.empty:
        st.success("No prompt is flagged.")
        return
    table = rows.assign(decision=[decision_text(decided.loc[t]) if t in decided.index else "" for t in rows["task_id"]],
                        checks=[", ".join(c) for c in rows["checks"]])
    st.dataframe(table[["task_id", "score", "check", "checks", "detail", "decision", "prompt", "response"]],
                 hide_index=True, width="stretch", column_config={
                     "task_id": st.column_config.NumberColumn("task", format="%d"),
                     "score": st.column_config.ProgressColumn("severity", min_value=0.0, max_value=1.0,
                                                              help="higher = more likely a problem; 0.5 = at the "
                                                                   "check's threshold"),
                     "prompt": st.column_config.TextColumn("prompt", width="medium"),
                     "response": st.column_config.TextColumn("answer in force", width="large")})
    by_task = rows.set_index("task_id")
    task = st.selectbox("Task", rows["task_id"].tolist(), key="gen_task",
                        format_func=lambda t: f"task {t} · {by_task.loc[t, 'check']} · {by_task.loc[t, 'score']:.2f}")
    row = by_task.loc[task]
    st.markdown(f"**Prompt** · {safe(row['detail'])}")
    st.text(row["prompt"])
    related = report.issues[(report.issues["task_id"] == task) & report.issues["related"].map(
        lambda r: r is not None and len(r) > 0)]
    if not related.empty:
        st.caption("Related tasks: " + ", ".join(str(t) for t in sorted({int(t) for r in related["related"] for t in r}
                                                                       - {int(task)})[:20]))
    answers = list(row["answers"])
    columns = st.columns(max(1, len(answers)))
    for column, answer in zip(columns, answers):
        column.markdown(f"**{answer['annotator']}**" + (" · in force" if kind.key(answer["response"]) ==
                                                        kind.key(row["response"]) else ""))
        column.text(answer["response"])
    decision = None
    b1, b2, b3 = st.columns(3)
    if b1.button("Keep", key="gen_keep", help="the answer is fine: record that a person checked it"):
        decision = Decision(int(task), "keep", author, snapshot.id)
    if b2.button("Exclude from training", key="gen_exclude"):
        decision = Decision(int(task), "exclude", author, snapshot.id)
    others = [a for a in answers if kind.key(a["response"]) != kind.key(row["response"])]
    if others:
        chosen = b3.selectbox("Use another expert's answer", [a["annotator"] for a in others], key="gen_other",
                              index=None, placeholder="choose an expert")
        if chosen is not None and b3.button("Use this answer", key="gen_use"):
            text = next(a["response"] for a in others if a["annotator"] == chosen)
            decision = Decision(int(task), "relabel", author, snapshot.id, label=text,
                                note=f"used {chosen}'s answer")
    if decision is not None:
        try:
            log.append([decision], classes=(), kind=kind)
            st.success(f"Task {task}: {decision.action} (appended; the experts' answers are untouched).")
        except StudioError as exc:
            show_error(exc)
    if task in decided.index and st.button("Undo the decision on this task", key="gen_undo"):
        undone = log.undo_last(int(task), author=author, snapshot_id=snapshot.id)
        if undone is not None:
            st.success(f"Task {task}: the decision was undone.")
