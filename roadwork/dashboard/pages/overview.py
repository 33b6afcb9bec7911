"""Overview: the champion, a metric row and the last job runs."""

import streamlit as st

from roadwork.dashboard import services

data = services.overview()
champion = data.champion

st.title("Overview")

if champion is None:
    st.info("No champion yet: run `roadwork demo` or `roadwork deploy VERSION`", icon=":material/info:")
else:
    st.subheader(f"Champion: `{champion.label}`")
    st.caption(
        f"Champion since {champion.since:%Y-%m-%d %H:%M}; created {champion.created_at:%Y-%m-%d %H:%M} "
        f"(local time, {services.local_tz_name()})."
    )
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Validation MCC", "-" if champion.mcc is None else f"{champion.mcc:.3f}")
    c2.metric("Validation accuracy", "-" if champion.accuracy is None else f"{champion.accuracy:.1%}")
    c3.metric("Champion for", services.format_duration(champion.champion_for_s))
    c4.metric("Model age", services.format_duration(champion.age_s))
    if champion.evaluated_at is not None:
        st.caption(f"Latest validation: n={champion.n}, at {champion.evaluated_at:%Y-%m-%d %H:%M}.")
    else:
        st.caption("No validation evaluation of the champion yet.")

st.divider()
m1, m2, m3, m4 = st.columns(4)
m1.metric("Versions", data.n_versions)
m2.metric("Champion moves", data.n_alias_moves)
m3.metric("Pending commands", data.n_pending_commands)
m4.metric(f"Failed runs (last {services.JOB_RUNS_SHOWN})", data.n_failed_runs)

st.subheader("Recent job runs")
if not data.job_runs:
    st.caption("No job runs yet.")
else:
    st.dataframe(
        [
            {
                "job": r.job_id,
                "status": r.status,
                "trigger": r.trigger,
                "scheduled": r.scheduled_at,
                "started": r.started_at,
                "finished": r.finished_at,
                "duration_s": r.duration_s,
                "error": r.error or "",
            }
            for r in data.job_runs
        ],
        hide_index=True,
        width="stretch",
        key="overview_job_runs",
        column_config={
            "scheduled": st.column_config.DatetimeColumn("scheduled", format="YYYY-MM-DD HH:mm:ss"),
            "started": st.column_config.DatetimeColumn("started", format="YYYY-MM-DD HH:mm:ss"),
            "finished": st.column_config.DatetimeColumn("finished", format="YYYY-MM-DD HH:mm:ss"),
            "duration_s": st.column_config.NumberColumn("duration", format="%.1f s"),
            "error": st.column_config.TextColumn("error", width="large"),
        },
    )
    st.caption(f"Times in local time, {services.local_tz_name()}.")
