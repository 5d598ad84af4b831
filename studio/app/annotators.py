"""The Quality page's Annotators tab: each annotator against the out-of-sample model on the tasks they labeled alone
(with "ask a second annotator" for a sample of them), then, where tasks have several annotators, CROWDLAB quality,
agreement, each annotator's confusion against consensus and the least certain consensus."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from studio.app.charts import LABEL_LIMIT, heatmap, readable_columns
from studio.app.state import flash, guarded, md


def render_annotators(ws, snapshot, assessment, issues: pd.DataFrame) -> None:
    against_model(ws, snapshot, issues)
    if assessment.annotators.empty:
        st.info("No task has two or more annotators yet, so there is no consensus (CROWDLAB) to compare against.")
        return
    st.subheader("Annotator quality (CROWDLAB)")
    st.altair_chart(alt.Chart(assessment.annotators).mark_bar().encode(
        x=alt.X("annotator_quality:Q", scale=alt.Scale(domain=[0, 1]), title="annotator quality (0-1)",
                axis=alt.Axis(values=[0, 0.2, 0.4, 0.6, 0.8, 1])),
        y=alt.Y("annotator:N", sort="-x", title=None, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        tooltip=list(assessment.annotators.columns)), width="stretch")
    st.dataframe(assessment.annotators, hide_index=True, width="stretch", column_config=readable_columns(
        assessment.annotators))
    st.subheader("Agreement (Krippendorff's alpha, percent agreement)")
    st.dataframe(assessment.agreement, hide_index=True, width="stretch",
                 column_config=readable_columns(assessment.agreement))
    weakest_first = assessment.annotators.sort_values("annotator_quality", kind="stable")["annotator"].tolist()
    person = st.selectbox("Confusion against consensus for", weakest_first,
                          help="The annotators are listed weakest first (by CROWDLAB quality).")
    conf = assessment.annotator_confusion
    conf = conf[conf["annotator"] == person]
    st.altair_chart(heatmap(conf, x="label", y="consensus", scheme="oranges", x_title=f"{person}'s label",
                            sort=assessment.meta["classes"]),
                    width="stretch")
    st.subheader("Least certain consensus")
    least = assessment.consensus_tasks.sort_values("consensus_quality").head(50)
    texts = issues.drop_duplicates("task_id").set_index("task_id")["text"]
    least = least.assign(text=least["task_id"].map(texts)).drop(
        columns=["consensus_label", "majority_label"], errors="ignore")
    st.dataframe(least, hide_index=True, width="stretch", column_config={
        **readable_columns(least), "text": st.column_config.TextColumn("text", width="large")})


def against_model(ws, snapshot, issues: pd.DataFrame) -> None:
    """A weak annotator shows here even without overlap: the model, which never saw the label it scores, rates
    each annotator's labels; a second opinion on a sample of their tasks gives CROWDLAB the overlap it needs."""
    from studio.consensus import annotators_against_model

    table = annotators_against_model(issues)
    if table.empty:
        return
    st.subheader("Annotators against the model (tasks labeled alone)")
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "label_quality": st.column_config.NumberColumn("label quality", format="%.3f",
                                                       help="The out-of-sample model's mean belief in their labels"),
        "flagged": st.column_config.ProgressColumn("flagged", min_value=0, max_value=1, format="percent"),
        "against_others": st.column_config.NumberColumn("flagged vs the others", format="%+.1%",
                                                        help="Their flagged share minus everyone else's")})
    st.caption("Without a second annotator on a task, CROWDLAB cannot rate anyone; the model can. Ask a second "
               "annotator for a sample of someone's tasks to check.")
    c1, c2, c3 = st.columns([3, 1, 2])
    who = c1.selectbox("Second opinion on the tasks of", table["annotator"].tolist(), key="second_who")
    n = c2.number_input("Tasks", min_value=1, max_value=500, value=10, key="second_n")
    if c3.button("Ask a second annotator", key="second_go"):
        asked = guarded(lambda: ws.review.ask_second_annotator(snapshot, who, n=int(n)))
        if asked is not None:
            flash(f"{len(asked)} of {md(who)}'s tasks come round once more in Label Studio's labeling stream, to "
                  "annotators who have not labeled them; the next sync brings their labels.")
