"""Models: every version with its metrics, MCC across versions, and one version's condition cells."""

import json

import streamlit as st

from roadwork.dashboard import charts, services

st.title("Models")
rows = services.versions()
if not rows:
    st.info("No versions yet: run `roadwork demo` or `roadwork train`.", icon=":material/info:")
    st.stop()

st.dataframe(
    [
        {
            "version": r.version,
            "champion": r.is_champion,
            "created": r.created_at,
            "training val MCC": r.training_mcc,
            "eval MCC": r.eval_mcc,
            "eval accuracy": r.eval_accuracy,
            "eval n": r.eval_n,
            "eval kind": r.eval_kind or "",
            "parent": r.parent or "",
            "data fingerprint": r.data_fingerprint or "",
        }
        for r in rows
    ],
    hide_index=True,
    width="stretch",
    key="models_versions",
    column_config={
        "champion": st.column_config.CheckboxColumn("champion"),
        "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
        "training val MCC": st.column_config.NumberColumn(format="%.3f"),
        "eval MCC": st.column_config.NumberColumn(format="%.3f"),
        "eval accuracy": st.column_config.NumberColumn(format="percent"),
    },
)
st.caption(f"Latest evaluation of each version (any kind). Times in local time, {services.local_tz_name()}.")

oldest_first = rows[::-1]
champion = next((r.version for r in rows if r.is_champion), None)
st.plotly_chart(
    charts.mcc_across_versions(
        [r.version for r in oldest_first],
        [r.eval_mcc for r in oldest_first],
        [r.training_mcc for r in oldest_first],
        champion=champion,
    ),
    key="models_mcc_chart",
)

st.subheader("Version details")
by_id = {r.id: r for r in rows}
default_id = next((r.id for r in rows if r.is_champion), rows[0].id)
selected_id = st.selectbox(
    "Version",
    options=list(by_id),
    index=list(by_id).index(default_id),
    format_func=lambda i: by_id[i].label + ("  (champion)" if by_id[i].is_champion else ""),
    key="models_selected_version",
)
selected = by_id[selected_id]
st.caption(
    f"Created by {selected.created_by}; code revision {selected.code_revision or '-'}; "
    f"parent {selected.parent or '-'}."
)

if selected.eval_id is None:
    st.caption("No evaluation of this version yet.")
else:
    cells = services.condition_cells(selected.eval_id)
    if not cells:
        st.caption("Its latest evaluation has no condition cells.")
    else:
        left, right = st.columns([3, 2])
        left.plotly_chart(
            charts.condition_mcc(
                [f"{c.condition}={c.value}" for c in cells],
                [c.mcc for c in cells],
                [c.mcc_ci_low for c in cells],
                [c.mcc_ci_high for c in cells],
                [c.n for c in cells],
            ),
            key="models_condition_chart",
        )
        right.dataframe(
            [
                {
                    "condition": c.condition,
                    "value": c.value,
                    "n": c.n,
                    "MCC": c.mcc,
                    "accuracy": c.accuracy,
                    "MCC CI": "" if c.mcc_ci_low is None else f"[{c.mcc_ci_low:.2f}, {c.mcc_ci_high:.2f}]",
                }
                for c in cells
            ],
            hide_index=True,
            width="stretch",
            key="models_condition_cells",
            column_config={
                "MCC": st.column_config.NumberColumn(format="%.3f"),
                "accuracy": st.column_config.NumberColumn(format="percent"),
            },
        )

with st.expander("Training config (JSON)", expanded=False, key="models_config_expander"):
    st.code(json.dumps(selected.config, indent=2, sort_keys=True, default=str), language="json")
