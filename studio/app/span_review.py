"""The Quality page of a named-entity (spans) project: the span report as a review queue with the spans highlighted
in the text and the suggestion beside them, agreement between annotators, and the span checks.

Rendering only: the report comes from ws.quality.assess / assessment (studio/assess_spans.py), decisions are
appended to the project's log (studio/review.py), re-review requests go through ws.review.send_for_review.
"""

from __future__ import annotations

import html
import json

import pandas as pd
import streamlit as st

from studio.app.state import guarded, quality_report, show_error
from studio.assess_spans import span_review_requests
from studio.errors import StudioError
from studio.review import Decision, decision_text, effective_decisions

#: One colour per entity type, in config order (Label Studio's NER template colours).
COLOURS = ["#FFA39E", "#FFC069", "#D3F261", "#91D5FF", "#D3ADF7", "#87E8DE", "#FFD591", "#B7EB8F"]


def highlighted(text: str, spans: list[dict], types: list[str]) -> str:
    """The text as HTML with each span marked in its type's colour and labeled (escaped: task text is data)."""
    out, at = [], 0
    for span in sorted(spans, key=lambda s: (int(s["start"]), -int(s["end"]))):
        start, end = int(span["start"]), int(span["end"])
        if start < at:
            continue  # overlapping spans are listed by the validation report; show the first
        colour = COLOURS[types.index(span["label"]) % len(COLOURS)] if span["label"] in types else "#DDDDDD"
        out.append(html.escape(text[at:start]))
        out.append(f'<mark style="background:{colour};padding:0 2px;border-radius:3px">{html.escape(text[start:end])}'
                   f'<sub style="font-size:0.7em"> {html.escape(str(span["label"]))}</sub></mark>')
        at = end
    out.append(html.escape(text[at:]))
    return "".join(out)


def render(ws, snapshot, log, author: str) -> None:
    kind = snapshot.schema.kind
    types = list(kind.classes)
    report = quality_report(ws, snapshot, embedding="Embedding words", checks=(
        "word-level out-of-sample probabilities (the fast token learner, cross-validated), the studio's span error "
        "detection beside plain cleanlab token classification, surface forms labeled with several types, boundary "
        "disagreements, span agreement between annotators"))
    if report is None:
        return
    meta = report.meta
    st.caption(f"Snapshot `{snapshot.id}` · {meta['n_labeled']} labeled texts · word probabilities from the "
               f"{meta['model']}, {meta['folds']} folds · an estimated {meta['error_rate']:.0%} of texts have an "
               "error")
    decided = effective_decisions(log.read()).set_index("task_id")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("flagged texts", int(meta["flagged"]), help="the studio's detection (entity-level decisions)")
    c2.metric("plain cleanlab", int(meta["cleanlab_flagged"]), help="cleanlab token classification on the same "
              "probabilities: a text is flagged when any of its words is")
    c3.metric("surface forms with several types", len(report.surface_forms))
    c4.metric("decided", len(decided))

    queue_tab, checks_tab, agreement_tab = st.tabs(["Review queue", "Span checks", "Annotator agreement"])
    with queue_tab:
        review_queue(ws, snapshot, report, log, author, decided, types)
    with checks_tab:
        st.markdown("**Surface forms labeled with different types** (the same text, lowercased)")
        st.dataframe(report.surface_forms, hide_index=True, width="stretch")
        st.markdown("**Boundaries the model would move by one word**")
        st.dataframe(report.boundaries, hide_index=True, width="stretch")
    with agreement_tab:
        if report.agreement.empty:
            st.info("No task has two or more annotators yet.")
        else:
            st.markdown("**Span agreement between annotators** (F1 between pairs on the same task; exact = same "
                        "start, end and type; partial = same type, overlapping)")
            st.dataframe(report.agreement, hide_index=True, width="stretch")
            st.markdown("**Each annotator against the consensus**")
            st.dataframe(report.annotators, hide_index=True, width="stretch")


def review_queue(ws, snapshot, report, log, author: str, decided: pd.DataFrame, types: list[str]) -> None:
    kind = snapshot.schema.kind
    only_flagged = st.toggle("Only flagged texts", value=True, key="spans_only_flagged")
    rows = report.flagged() if only_flagged else report.sentences.sort_values("score", kind="stable")
    if rows.empty:
        st.success("No text is flagged.")
        return
    table = rows.assign(
        given=[kind.target_text(s) for s in rows["given_spans"]],
        suggested=[kind.target_text(s) for s in rows["suggested_spans"]],
        decision=[decision_text(decided.loc[t]) if t in decided.index else "" for t in rows["task_id"]])
    st.dataframe(table[["task_id", "score", "kind", "given", "suggested", "cleanlab_issue", "decision", "text"]],
                 hide_index=True, width="stretch", column_config={
                     "task_id": st.column_config.NumberColumn("task", format="%d"),
                     "score": st.column_config.NumberColumn("quality", format="%.3f",
                                                            help="low = the given spans are likely wrong"),
                     "kind": st.column_config.TextColumn("likely error", help="type, boundary, not an entity, "
                                                         "or an entity left out"),
                     "cleanlab_issue": st.column_config.CheckboxColumn("cleanlab", help="plain cleanlab flags it"),
                     "text": st.column_config.TextColumn("text", width="large")})
    task = st.selectbox("Task", rows["task_id"].tolist(), key="spans_task",
                        format_func=lambda t: f"task {t} · quality {rows.set_index('task_id').loc[t, 'score']:.3f}")
    row = rows.set_index("task_id").loc[task]
    left, right = st.columns(2)
    left.markdown("**Given (the annotators' consensus)**")
    left.markdown(highlighted(row["text"], list(row["given_spans"]), types), unsafe_allow_html=True)
    right.markdown("**Suggested**")
    right.markdown(highlighted(row["text"], list(row["suggested_spans"]), types), unsafe_allow_html=True)
    if len(row["worst_words"]):
        st.caption("Words the suggestion changes: " + ", ".join(
            f"'{w['word']}' {w['given']} → {w['suggested']}" for w in row["worst_words"]))
    b1, b2, b3, b4 = st.columns(4)
    decision = None
    if b1.button("Keep the given spans", key="spans_keep"):
        decision = Decision(int(task), "keep", author, snapshot.id)
    if b2.button("Take the suggestion", key="spans_take", type="primary"):
        decision = Decision(int(task), "relabel", author, snapshot.id, label=json.dumps(list(row["suggested_spans"])),
                            note="took the span quality suggestion")
    if b3.button("Exclude the text", key="spans_exclude"):
        decision = Decision(int(task), "exclude", author, snapshot.id)
    if decision is not None:
        try:
            log.append([decision], classes=types, kind=snapshot.schema.kind)
            st.success(f"Task {task}: {decision.action} (appended; the annotations are untouched).")
        except StudioError as exc:
            show_error(exc)
    if b4.button("Send flagged to Label Studio", key="spans_send",
                 help="each flagged text gets a prediction with the suggested spans and lands in the 'Needs "
                      "review' tab"):
        sent = guarded(lambda: ws.review.send_for_review(snapshot, span_review_requests(report.flagged(),
                                                                                 snapshot.schema.kind)))
        if sent is not None:
            st.success(f"Sent {sent[0]} texts to the 'Needs review' tab in Label Studio.")
