"""Charts more than one page draws the same way."""

from __future__ import annotations

import altair as alt
import pandas as pd

LABEL_LIMIT = 250  # px: long class names and annotator e-mails stay readable on chart axes


def heatmap(long: pd.DataFrame, *, x: str, y: str, scheme: str, x_title: str | None = None,
            sort: list[str] | None = None) -> alt.Chart:
    """`count` per (x, y) cell as colour, on a log-like scale from 0; a zero stays white, so that one case does not
    look like none. sort: the order of both axes (e.g. the class order), else alphabetical."""
    return alt.Chart(long).mark_rect(stroke="#eeeeee").encode(
        x=alt.X(f"{x}:N", title=x_title or x, sort=sort, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        y=alt.Y(f"{y}:N", sort=sort, axis=alt.Axis(labelLimit=LABEL_LIMIT)),
        color=alt.condition(alt.datum.count > 0,
                            alt.Color("count:Q", scale=alt.Scale(scheme=scheme, type="symlog", domainMin=0)),
                            alt.value("white")),
        tooltip=[y, x, "count"])
