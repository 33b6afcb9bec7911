"""Jobs: schedules and their next runs, what is running now, run history with logs; for operators, schedule
edits (with a preview of the next runs), pause, resume, run now and cancel. Every action is a scheduler command."""

import streamlit as st

from roadwork.dashboard import auth, services, widgets
from roadwork.dashboard import formatting as fmt
from roadwork.dashboard import ops_services as ops
from roadwork.dashboard.queries import jobs as queries

TIME = "%Y-%m-%d %H:%M"
DATETIME_COLUMN = {"format": "YYYY-MM-DD HH:mm:ss"}


def requested(what: str, command_id: int) -> None:
    st.success(f"{what} requested (command #{command_id}); the scheduler applies it: see its outcome below.",
               icon=":material/check_circle:")


st.title("Jobs")
operator = auth.is_operator()
tz = fmt.local_tz_name()
schedules = queries.schedules()
by_id = {s.job_id: s for s in schedules}

# --- schedules ---------------------------------------------------------------------------------------------------
st.subheader("Schedules")
if not schedules:
    st.info("No scheduled jobs yet: the scheduler (`roadwork scheduler`) registers them when it first starts.",
            icon=":material/info:")
else:
    st.dataframe(
        [
            {
                "job": s.job_id,
                "what": s.description,
                "cron (UTC)": s.cron or s.trigger,
                "state": "unreadable" if s.error else ("paused" if s.paused else "scheduled"),
                "next run": s.next_run,
                "after that": ", ".join(f"{t:{TIME}}" for t in s.upcoming if s.next_run is None or t > s.next_run),
                "error": s.error or "",
            }
            for s in schedules
        ],
        hide_index=True, placeholder=fmt.NO_VALUE,
        width="stretch",
        key="jobs_schedules",
        column_config={"next run": st.column_config.DatetimeColumn("next run", **DATETIME_COLUMN)},
    )
    st.caption(f"Crons are in UTC; times in local time, {tz}.")

# --- running now -------------------------------------------------------------------------------------------------
st.subheader("Running now")
running = queries.running_jobs()


@st.fragment(run_every=10 if running else None)
def show_running() -> None:
    jobs = queries.running_jobs()
    if not jobs:
        st.caption("Nothing is running.")
        return
    for job in jobs:
        label = (f"`{job.job_id}` (run #{job.run_id}) running for {fmt.format_duration(job.elapsed_s)}, "
                 f"since {job.started_at:{TIME}}")
        if job.timeout_s:
            label += f", of its {fmt.format_duration(job.timeout_s)} timeout"
            st.progress(min(job.elapsed_s / job.timeout_s, 1.0), text=label)
        else:
            st.markdown(label)
        if job.last_log_line:
            st.caption(f"Log: {fmt.md(job.last_log_line[:300])}")
        if job.timeout_s and job.elapsed_s > job.timeout_s * 1.1:
            st.warning(f"Run #{job.run_id} is past its timeout and still not finished: is the scheduler running?",
                       icon=":material/warning:")


show_running()

if operator and running:
    with st.form("act_cancel_form"):
        cancel_job = st.selectbox("Cancel the running job", sorted({r.job_id for r in running}), key="act_cancel_job")
        cancel_reason = st.text_input("Reason (required)", key="act_cancel_reason")
        cancel = st.form_submit_button("Cancel job", key="act_cancel_submit", icon=":material/cancel:")
    if cancel:
        try:
            requested(f"Cancel of `{cancel_job}`",
                      ops.request_job_command("cancel", cancel_job, cancel_reason, auth.actor()))
        except services.RequestError as exc:
            st.error(fmt.md(exc), icon=":material/error:")

# --- controls (operators) --------------------------------------------------------------------------------------
if operator:
    st.subheader("Run, pause or resume")
    runnable = queries.runnable_jobs()
    choices = list(by_id) + [j for j in runnable if j not in by_id]

    def describe(job_id: str) -> str:
        s = by_id.get(job_id)
        state = ("paused" if s.paused else "scheduled") if s else "on demand"
        return f"{job_id} ({state}): {s.description if s else runnable[job_id]}"

    with st.form("act_job_form"):
        job_id = st.selectbox("Job", choices, format_func=describe, key="act_job_id")
        reason = st.text_input("Reason (required)", key="act_job_reason", placeholder="e.g. data refreshed")
        c1, c2, c3 = st.columns(3)
        run_now = c1.form_submit_button("Run now", key="act_job_run_now", icon=":material/play_arrow:")
        pause = c2.form_submit_button("Pause", key="act_job_pause", icon=":material/pause:")
        resume = c3.form_submit_button("Resume", key="act_job_resume", icon=":material/resume:")
    kind = "run_now" if run_now else "pause" if pause else "resume" if resume else None
    if kind:
        try:
            requested(f"{kind.replace('_', ' ').capitalize()} of `{job_id}`",
                      ops.request_job_command(kind, job_id, reason, auth.actor()))
        except services.RequestError as exc:
            st.error(fmt.md(exc), icon=":material/error:")

    cron_jobs = [s.job_id for s in schedules if s.cron is not None]
    if cron_jobs:
        st.subheader("Edit a schedule")
        sched_job = st.selectbox("Job", cron_jobs, key="act_sched_job")
        # One input per job, so that picking another job starts from that job's cron.
        cron = st.text_input("Cron (UTC): minute hour day month day-of-week", value=by_id[sched_job].cron,
                             key=f"act_sched_cron_{sched_job}")
        st.caption("Day of week as in crontab: 0 and 7 are Sunday, 1 is Monday ... 6 is Saturday; names (`mon`-`sun`) "
                   "work too.")
        sched_reason = st.text_input("Reason (required)", key="act_sched_reason")
        submit = st.button("Submit schedule", key="act_sched_submit", type="primary", icon=":material/schedule:")
        try:
            preview = queries.preview_cron(cron)
            preview_error = None
        except services.RequestError as exc:
            preview, preview_error = [], str(exc)
        if preview:
            st.markdown(f"Next {len(preview)} runs ({tz}):\n" + "\n".join(f"- {t:%a %Y-%m-%d %H:%M}" for t in preview))
        if submit:
            try:
                requested(f"New schedule `{cron.strip()}` for `{sched_job}`",
                          ops.request_reschedule(sched_job, cron, sched_reason, auth.actor()))
            except services.RequestError as exc:
                st.error(fmt.md(exc), icon=":material/error:")
        elif preview_error:
            st.error(fmt.md(preview_error), icon=":material/error:")

# --- commands ----------------------------------------------------------------------------------------------------
st.subheader("Job commands")
commands = queries.job_commands()


@st.fragment(run_every=5 if widgets.any_pending(commands) else None)
def show_commands() -> None:
    latest = queries.job_commands()
    if not latest:
        st.caption("No job commands yet.")
        return
    widgets.commands_table(latest, key="jobs_commands")
    st.caption("Applied by the scheduler; a pending command waits for it.")


show_commands()

# --- history and logs --------------------------------------------------------------------------------------------
st.subheader("Run history")
job_filter = st.selectbox("Job", ["(all)", *sorted(set(by_id) | set(queries.runnable_jobs()))], key="jobs_history_job")
runs = queries.job_runs(None if job_filter == "(all)" else job_filter)
if not runs:
    st.caption("No runs yet.")
else:
    st.dataframe(
        [
            {
                "#": r.id,
                "job": r.job_id,
                "status": r.status,
                "trigger": r.trigger,
                "scheduled": r.scheduled_at,
                "started": r.started_at,
                "finished": r.finished_at,
                "duration": fmt.format_duration(r.duration_s),
                "error": (r.error or "").strip().splitlines()[0] if r.error else "",
            }
            for r in runs
        ],
        hide_index=True, placeholder=fmt.NO_VALUE,
        width="stretch",
        key="jobs_runs",
        column_config={name: st.column_config.DatetimeColumn(name, **DATETIME_COLUMN)
                       for name in ("scheduled", "started", "finished")}
        | {"error": st.column_config.TextColumn("error", width="large")},
    )
    st.caption(f"Newest first. Times in local time, {tz}.")

    with_detail = [r for r in runs if r.log_path or r.error]
    if with_detail:
        labels = {r.id: f"#{r.id} {r.job_id} {r.status}" + (f" {r.started_at:{TIME}}" if r.started_at else "")
                  for r in with_detail}
        run_id = st.selectbox("Log of run", list(labels), format_func=labels.get, key="jobs_log_run")
        run = next(r for r in with_detail if r.id == run_id)
        if run.log_path:
            tail = queries.read_log_tail(run.log_path)
            if tail.error:
                st.warning(f"{fmt.md(tail.error)} ({fmt.md(tail.path)})", icon=":material/warning:")
            else:
                st.caption(f"{fmt.md(tail.path)}: " + (f"the last {tail.shown} lines" if tail.truncated else "all of it"))
                st.code(tail.text or "(empty)", language="text")
        if run.error:
            st.caption("Error")
            st.code(run.error.strip(), language="text")
