"""Hard negatives: the mined sets with their counts per reason and per condition, and a gallery of one set."""

import math

import streamlit as st

from roadwork.dashboard import formatting as fmt
from roadwork.dashboard.charts import hard_negatives as charts
from roadwork.dashboard.queries import hard_negatives as queries

PER_PAGE = 48
GRID = 6
REASONS = ("confident_mistake", "uncertain")

st.title("Hard negatives")
sets = queries.hard_negative_sets()
if not sets:
    st.info("No hard-negative sets yet: the `mine` job makes one with the champion (`roadwork jobs run mine`).",
            icon=":material/info:")
    st.stop()

st.dataframe(
    [
        {
            "#": s.id,
            "name": s.name,
            "source version": s.source_version,
            "pool": s.pool,
            "items": s.n_items,
            "confident mistakes": s.reasons.get("confident_mistake", 0),
            "uncertain": s.reasons.get("uncertain", 0),
            "created": s.created_at,
            "pool here": s.pool_found,
        }
        for s in sets
    ],
    hide_index=True, placeholder=fmt.NO_VALUE,
    width="stretch",
    key="hn_sets",
    column_config={"created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
                   "pool here": st.column_config.CheckboxColumn("pool here")},
)
st.caption(f"Newest first. Times in local time, {fmt.local_tz_name()}.")

by_id = {s.id: s for s in sets}
set_id = st.selectbox("Set", list(by_id), format_func=lambda i: f"#{i} {by_id[i].name}", key="hn_selected_set")
selected = by_id[set_id]
items = queries.hard_negative_items(set_id)

# --- counts per condition and reason ---------------------------------------------------------------------------
counts = queries.condition_counts(items)
if counts:
    cells = sorted({(c.condition, c.value) for c in counts})
    per_cell = {(c.condition, c.value, c.reason): c.n for c in counts}
    reasons = sorted({c.reason for c in counts}, key=lambda r: (r not in REASONS, r))
    left, right = st.columns([3, 2])
    left.plotly_chart(
        charts.hard_negative_counts([f"{c}={v}" for c, v in cells],
                                    {r: [per_cell.get((c, v, r), 0) for c, v in cells] for r in reasons}),
        key="hn_counts_chart",
    )
    right.dataframe(
        [{"condition": c, "value": v, **{r: per_cell.get((c, v, r), 0) for r in reasons}} for c, v in cells],
        hide_index=True, placeholder=fmt.NO_VALUE,
        width="stretch",
        key="hn_condition_counts",
    )

# --- gallery -----------------------------------------------------------------------------------------------------
st.subheader("Items")
reason = st.selectbox("Reason", ["(all)", *REASONS], key="hn_reason")
shown = [i for i in items if reason == "(all)" or i.reason == reason]
pages = max(1, math.ceil(len(shown) / PER_PAGE))
page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, step=1,
                       key=f"hn_page_{set_id}_{reason}")  # per set and filter: each has its own page count
on_page = shown[(page - 1) * PER_PAGE: page * PER_PAGE]
thumbs = queries.thumbnails(set_id, selected.pool)
if not selected.pool_found:
    st.caption(f"The pool {fmt.md(selected.pool)} is not on this machine: items are shown by id.")
st.caption(f"{len(shown)} items, {PER_PAGE} a page; score is the calibrated answer, label 1 = roadwork.")

for start in range(0, len(on_page), GRID):
    for column, item in zip(st.columns(GRID), on_page[start: start + GRID], strict=False):
        caption = f"{item.score:.3f} · {item.reason}" + ("" if item.label is None else f" · label {item.label}")
        if item.record_id in thumbs:
            column.image(thumbs[item.record_id], caption=fmt.md(f"{item.record_id[:40]} · {caption}"), width="stretch")
        else:
            column.markdown(f"{fmt.md(item.record_id)}  \n{fmt.md(caption)}")
