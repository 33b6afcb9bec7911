"""Ablations: what each recipe component is worth. Studies from `roadwork ablate`, newest first; for one study its
MCC per seed, each variant's delta to the base with its 95% CI (table and chart), its status and its base config.
Read-only: viewers and operators see the same."""

import json

import streamlit as st

from roadwork.dashboard import formatting as fmt
from roadwork.dashboard.charts import ablations as charts
from roadwork.dashboard.queries import ablations as queries

DATETIME_FORMAT = "YYYY-MM-DD HH:mm"

st.title("Ablations")
studies = queries.studies()
if not studies:
    st.info("No ablation studies yet. Train the base config and one variant per flipped component, on the same "
            f"seeds, with:\n\n`{queries.CREATE_COMMAND}`", icon=":material/info:")
    st.stop()

by_id = {s.id: s for s in studies}


def _label(study_id: int) -> str:
    s = by_id[study_id]
    return (f"#{s.id} {s.config_name} · {s.created_at:%Y-%m-%d %H:%M} · {s.status} · "
            f"seeds {','.join(map(str, s.seeds))} · {', '.join(s.components)}")


study_id = st.selectbox("Study", list(by_id), format_func=_label, key="ablations_study")
st.caption(f"{len(studies)} stud{'y' if len(studies) == 1 else 'ies'}, newest first "
           f"(at most {queries.STUDIES_SHOWN}). Times in local time, {fmt.local_tz_name()}.")
study = by_id[study_id]

# --- status --------------------------------------------------------------------------------------------------------
missing = queries.not_run(study)
progress = f"{len(study.components) - len(missing)} of {len(study.components)} components done"
if study.status == "failed":
    st.error(f"Failed: {fmt.md(study.error or 'no error recorded')} ({progress}).", icon=":material/error:")
elif study.status == "running":
    st.info(f"Running since {study.created_at:%Y-%m-%d %H:%M}: {progress}. Rows appear as their seeds finish.",
            icon=":material/hourglass_top:")
else:
    finished = f" at {study.finished_at:%Y-%m-%d %H:%M}" if study.finished_at else ""
    st.success(f"Finished{finished}: {progress}.", icon=":material/check_circle:")
epochs = study.config.get("optim", {}).get("epochs", "?")
st.caption(f"Data {(study.data_fingerprint or 'unknown')[:12]}, {epochs} epochs, trained "
           f"{fmt.format_duration(sum(r.seconds for r in study.rows))} in all; started by {study.actor}."
           + (f" Not run: {', '.join(missing)}." if missing else ""))

# --- results -------------------------------------------------------------------------------------------------------
st.subheader("Results")
if not study.rows:
    st.caption("No results yet: the base trains first, then one variant per component.")
else:
    seed_columns = {queries.seed_column(s): st.column_config.NumberColumn(format="%.3f") for s in study.seeds}
    st.dataframe(
        queries.table_rows(study),
        hide_index=True, placeholder=fmt.NO_VALUE,  # e.g. the base, which has no delta
        width="stretch",
        height="content",
        key="ablations_table",
        column_config={**seed_columns,
                       "mean MCC": st.column_config.NumberColumn(format="%.3f"),
                       "delta": st.column_config.NumberColumn(format="%+.3f"),
                       "seconds": st.column_config.NumberColumn(format="%.0f")},
    )
    st.caption("delta: the variant's MCC minus the base's, paired by seed and averaged; 95% CI: the Student t "
               "interval of those paired differences (n/a with one seed). A variant turns one component "
               "**off** (or **on**): an off variant with a negative delta means the component helps.")
    shown = queries.variants(study)
    if shown:
        st.plotly_chart(
            charts.ablation_deltas([f"{r.component} {r.direction}" for r in shown],
                                   [r.delta for r in shown], [r.ci_low for r in shown],
                                   [r.ci_high for r in shown]),
            key="ablations_chart",
        )

# --- base config ---------------------------------------------------------------------------------------------------
st.subheader("Base config")
switches = sorted(queries.key_switches(study.config, study.components), key=lambda s: not s.studied)  # studied first
st.dataframe(
    [{"component": s.component, "setting": s.key, "value": json.dumps(s.value), "state": s.state,
      "studied": s.studied} for s in switches],
    hide_index=True, placeholder=fmt.NO_VALUE,
    width="stretch",
    height="content",
    key="ablations_switches",
    column_config={"studied": st.column_config.CheckboxColumn("studied")},
)
st.caption("The switches `roadwork ablate` can flip, as the base config sets them (state \"other\": neither "
           "of the two values a flip moves between).")
with st.expander(f"Base config {fmt.md(study.config_name)} (JSON)", expanded=False, key="ablations_config_expander"):
    st.code(json.dumps(study.config, indent=2, sort_keys=True, default=str), language="json")
