"""What more than one page shows the same way: charts, table headers, option help, times."""

from __future__ import annotations

from datetime import datetime, timezone

import altair as alt
import pandas as pd

LABEL_LIMIT = 250  # px: long class names and annotator e-mails stay readable on chart axes


def heatmap(long: pd.DataFrame, *, x: str, y: str, scheme: str, x_title: str | None = None,
            sort: list[str] | None = None) -> alt.Chart:
    """`count` per (x, y) cell as colour, on a log-like scale from 0; a zero stays white, so that one case does not
    look like none. sort: the order of both axes (e.g. the class order), else alphabetical."""
    return alt.Chart(long).mark_rect(stroke="#eeeeee").encode(
        # labelOverlap=False: every class is named, even where Vega would thin out labels that touch.
        x=alt.X(f"{x}:N", title=x_title or x, sort=sort,
                axis=alt.Axis(labelLimit=LABEL_LIMIT, labelOverlap=False, labelAngle=-45)),
        y=alt.Y(f"{y}:N", sort=sort, axis=alt.Axis(labelLimit=LABEL_LIMIT, labelOverlap=False)),
        color=alt.condition(alt.datum.count > 0,
                            alt.Color("count:Q", scale=alt.Scale(scheme=scheme, type="symlog", domainMin=0),
                                      legend=alt.Legend(format="d", tickMinStep=1)),
                            alt.value("white")),
        tooltip=[y, x, "count"])


def readable_columns(frame: pd.DataFrame) -> dict[str, object]:
    """st.dataframe column_config for a stored table: "issue_rate" reads "issue rate", shares in [0, 1] as
    percentages (0.7586 -> 75.9%)."""
    import streamlit as st

    config: dict[str, object] = {}
    for name in frame.columns:
        label = str(name).replace("_", " ")
        values = frame[name]
        share = (pd.api.types.is_float_dtype(values) and values.notna().any()
                 and values.between(0, 1).all() and any(w in label for w in ("rate", "percent", "share")))
        config[name] = (st.column_config.NumberColumn(label, format="percent") if share else
                        st.column_config.Column(label))
    return config


def options_help(descriptions: dict[str, str]) -> str:
    """A widget's help text: one markdown line per option, "**key**: description"."""
    return "\n".join(f"- **{k}**: {d}" for k, d in descriptions.items())


def utc_seconds(stamp: str) -> str:
    """An ISO 8601 time as "YYYY-MM-DD HH:MM:SS" in UTC; anything else (e.g. "") unchanged."""
    try:
        when = datetime.fromisoformat(stamp)
    except (TypeError, ValueError):
        return stamp
    return (when.astimezone(timezone.utc) if when.tzinfo else when).strftime("%Y-%m-%d %H:%M:%S")
