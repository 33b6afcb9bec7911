"""Overview: the champion and its reward-decay countdown, our standing on the network, the next scheduled runs,
open alerts, the last failures, a few counts and the last job runs."""

import streamlit as st

from roadwork.dashboard import formatting as fmt
from roadwork.dashboard.charts import overview as charts
from roadwork.dashboard.queries import overview as queries
from roadwork.platform.standings import is_sample

TIME = "%Y-%m-%d %H:%M"
DATETIME_COLUMN = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")


def _fmt(value: float | None, spec: str) -> str:
    return fmt.NO_VALUE if value is None else format(value, spec)


def _delta(value: float | None, spec: str) -> str | None:
    return None if value is None else format(value, spec)


data = queries.overview()
champion = data.champion

st.title("Overview")

# --- champion ------------------------------------------------------------------------------------------------
if champion is None:
    st.info("No champion yet: run `roadwork demo` or `roadwork deploy VERSION`", icon=":material/info:")
else:
    st.subheader(f"Champion: {fmt.md(champion.label)}")
    st.caption(
        f"Champion since {champion.since:%Y-%m-%d %H:%M}; created {champion.created_at:%Y-%m-%d %H:%M} "
        f"(local time, {fmt.local_tz_name()})."
    )
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Validation MCC", fmt.NO_VALUE if champion.mcc is None else f"{champion.mcc:.3f}")
    c2.metric("Validation accuracy", fmt.NO_VALUE if champion.accuracy is None else f"{champion.accuracy:.1%}")
    c3.metric("Champion for", fmt.format_duration(champion.champion_for_s))
    c4.metric("Model age", fmt.format_duration(champion.age_s))
    if champion.evaluated_at is not None:
        st.caption(f"Latest validation: n={champion.n}, at {champion.evaluated_at:%Y-%m-%d %H:%M}.")
    else:
        st.caption("No validation evaluation of the champion yet.")

    age = queries.countdown()
    if age is not None:
        st.markdown("**Reward-decay countdown** (announced model-age rule; a new deploy resets it)")
        d1, d2, d3, d4 = st.columns(4)
        d1.metric("Days until the decay starts", f"{max(age.days_until_decay, 0.0):.1f}")
        d2.metric("Reward factor", f"{age.reward_factor:.2f}")
        d3.metric("Days until zero reward", f"{max(age.days_until_zero, 0.0):.1f}")
        d4.metric("Submitted", f"{age.age_days:.1f} days ago")
        phase = (f"full reward until day {age.full_reward_days}" if age.days_until_decay > 0
                 else f"decaying since day {age.full_reward_days}")
        st.progress(age.progress, text=f"Day {age.age_days:.1f} of {age.zero_reward_days}: {phase}")
        if age.retrain_due:
            st.warning(f"Retraining is due: the reward of {fmt.md(age.version)} starts to decay in "
                       f"{max(age.days_until_decay, 0.0):.1f} days.", icon=":material/schedule:")

# --- standing ------------------------------------------------------------------------------------------------
st.divider()
standing = queries.standings()
st.subheader("Our standing" + (f" (UID {standing.uid})" if standing.uid is not None else ""))
if standing.stale:
    st.badge(f"Stale: the last poll ({standing.stale_at:{TIME}}) failed", icon=":material/warning:", color="orange")
    st.caption(f"Poll error: {fmt.md(standing.stale_error or 'unknown')}. Numbers below are from the last good snapshot.")
if standing.empty:
    st.info(standing.empty, icon=":material/info:")
if standing.found:
    s1, s2, s3, s4 = st.columns(4)
    s1.metric(f"Rank (of {standing.miners} miners)", standing.rank, _delta(standing.rank_delta, "+d"),
              delta_color="inverse", help="Our place among the miners by incentive; a negative change is a gain.")
    s2.metric("Incentive", _fmt(standing.incentive, ".4f"), _delta(standing.incentive_delta, "+.4f"))
    s3.metric("Emission (alpha)", _fmt(standing.emission, ".4f"), _delta(standing.emission_delta, "+.4f"),
              help="Per epoch, in alpha (the subnet's token), not TAO.")
    s4.metric("Trust", _fmt(standing.trust, ".3f"), _delta(standing.trust_delta, "+.3f"))
    if len(standing.trend) > 1:
        st.plotly_chart(
            charts.standing_trend([p.when for p in standing.trend], [p.incentive for p in standing.trend],
                                  [p.rank for p in standing.trend]),
            key="overview_standing_trend",
        )
if standing.taken_at is not None and is_sample(standing.source):
    st.badge("sample data", icon=":material/science:", color="violet",
             help="The demo's sample standings, not the network's: set `leaderboard.source` to poll the subnet.")
if standing.taken_at is not None:
    st.caption(f"Latest good snapshot from {fmt.md(standing.source)} at {standing.taken_at:{TIME}} (local time); "
               "changes against the good snapshot before it.")

# --- next runs, alerts, failures -----------------------------------------------------------------------------
st.subheader("Next scheduled runs")
runs_ahead = queries.next_runs()
if not runs_ahead:
    st.info("No scheduled jobs yet: start the scheduler (`roadwork scheduler`) to register the built-in jobs.",
            icon=":material/info:")
else:
    st.dataframe(
        [{"scheduled job": r.job_id, "next run": r.next_run,
          "in": "paused" if r.paused else ("due" if (r.in_s or 0) <= 0 else fmt.format_duration(r.in_s)),
          "trigger": r.trigger, "problem": r.error or ""} for r in runs_ahead],
        hide_index=True, placeholder=fmt.NO_VALUE, width="stretch", key="overview_next_runs",
        column_config={"next run": DATETIME_COLUMN},
    )

st.subheader("Open alerts (last 24 h)")
alerts = queries.open_alerts()
if not alerts:
    st.info("No alerts in the last 24 h.", icon=":material/notifications_off:")
else:
    st.dataframe([{"when": a.when, "alert": a.kind, "message": a.message} for a in alerts],
                 hide_index=True, placeholder=fmt.NO_VALUE, width="stretch", key="overview_alerts",
                 column_config={"when": DATETIME_COLUMN, "message": st.column_config.TextColumn(width="large")})

st.subheader("Last failures")
failed = queries.failures()
if not failed:
    st.info("No failures: no failed or missed job runs and no failed deploys.", icon=":material/check_circle:")
else:
    st.dataframe([{"when": f.when, "failure": f.status, "what": f.what, "from": f.source, "detail": f.detail}
                  for f in failed],
                 hide_index=True, placeholder=fmt.NO_VALUE, width="stretch", key="overview_failures",
                 column_config={"when": DATETIME_COLUMN, "detail": st.column_config.TextColumn(width="large")})

# --- counts and recent runs ----------------------------------------------------------------------------------
st.divider()
m1, m2, m3, m4 = st.columns(4)
m1.metric("Versions", data.n_versions)
m2.metric("Champion moves", data.n_alias_moves)
m3.metric("Pending commands", data.n_pending_commands)
m4.metric(f"Failed runs (last {queries.JOB_RUNS_SHOWN})", data.n_failed_runs)

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
        hide_index=True, placeholder=fmt.NO_VALUE,
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
st.caption(f"Times in local time, {fmt.local_tz_name()}.")
