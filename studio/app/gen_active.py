"""The Active learning page of an instruction -> response project: which unanswered prompts to answer next
(diverse prompts; optionally the least confident drafts), the current run's drafts for them, the push into
Label Studio as editable pre-annotations, and how much experts changed earlier drafts.

Rendering only: ws.active.draft_pool / push_drafts / draft_edits (studio/stages/active.py, studio/drafts.py).
"""

from __future__ import annotations

import altair as alt
import streamlit as st

from studio.app.state import guarded, progress_callback


def render(ws, snapshot) -> None:
    st.caption("Uncertainty-based picking is known to hurt for generation, so the prompts to answer next are chosen "
               "for diversity: the most typical prompt of each cluster of the unanswered prompts' embeddings. The "
               "current run drafts an answer to each; experts correct the draft in Label Studio instead of writing "
               "from scratch.")
    c1, c2 = st.columns([1, 2])
    n = c1.number_input("Prompts", min_value=1, max_value=200, value=10,
                        help="drafting takes about a second per 10 tokens per prompt on a CPU")
    by_confidence = c2.toggle("Prefer the least confident drafts", value=False,
                              help="draft 3x as many diverse prompts and keep those whose draft has the lowest mean "
                                   "token log-probability")
    if st.button("Draft answers", type="primary"):
        bar = st.progress(0.0, text="Drafting ...")
        st.session_state["drafts"] = guarded(lambda: ws.active.draft_pool(
            snapshot, n=int(n), by_confidence=by_confidence, progress=progress_callback(bar, "Drafting")))
        bar.empty()
    batch = st.session_state.get("drafts")
    if batch is not None:
        st.subheader(f"{len(batch.pool)} drafts by `{batch.model_version}` ({batch.strategy})")
        st.dataframe(batch.pool[["rank", "task_id", "confidence", "text", "draft"]], hide_index=True,
                     width="stretch", column_config={
                         "confidence": st.column_config.NumberColumn(
                             format="%.3f", help="exp(mean token log-probability): the draft's geometric-mean "
                                                 "token probability"),
                         "text": st.column_config.TextColumn("prompt", width="medium"),
                         "draft": st.column_config.TextColumn("draft", width="large")})
        st.download_button("Download the drafts (CSV)", batch.pool.to_csv(index=False).encode(),
                           file_name=f"drafts-{batch.model_version}.csv", mime="text/csv")
        if st.button("Push drafts to Label Studio",
                     help="each prompt gets the draft as an editable prediction; the 'Drafts to correct' tab lists "
                          "them"):
            pushed = guarded(lambda: ws.active.push_drafts(batch))
            if pushed is not None:
                st.success(f"Pushed {pushed['pushed']} drafts: open the 'Drafts to correct' tab in Label Studio.")
    result = guarded(lambda: ws.active.draft_edits(snapshot))
    if result is not None and not result[1].empty:
        edits, stats = result
        st.subheader("How much experts changed the drafts")
        st.dataframe(stats, hide_index=True, width="stretch", column_config={
            "mean_distance": st.column_config.NumberColumn("mean edit distance", format="%.2f"),
            "median_distance": st.column_config.NumberColumn("median edit distance", format="%.2f"),
            "unchanged_share": st.column_config.NumberColumn("accepted unchanged", format="percent")})
        if len(edits):
            st.altair_chart(alt.Chart(edits).mark_boxplot().encode(
                x=alt.X("distance:Q", title="normalised edit distance (0 = unchanged)"),
                y=alt.Y("model_version:N", title=None)), width="stretch")
