"""Deployments: what was live when, a rollback request form, and the scheduler commands it produces."""

import streamlit as st

from roadwork.clock import utcnow
from roadwork.dashboard import auth, services, widgets
from roadwork.dashboard import formatting as fmt
from roadwork.dashboard.charts import deployments as charts
from roadwork.dashboard.queries import deployments as queries

st.title("Deployments")
events = queries.alias_events()

st.subheader("Champion timeline")
if not events:
    st.info("The champion has never moved: run `roadwork demo` or `roadwork deploy VERSION`.", icon=":material/info:")
else:
    order = queries.version_order()  # oldest version at the bottom
    st.plotly_chart(
        charts.alias_timeline(
            [(e.when, e.to_version, e.action) for e in events], fmt.local(utcnow()), version_order=order
        ),
        key="deployments_timeline_chart",
    )
    st.dataframe(
        [
            {
                "when": e.when,
                "action": e.action,
                "from": e.from_version,
                "to": e.to_version,
                "actor": e.actor,
                "reason": e.reason,
            }
            for e in events
        ],
        hide_index=True, placeholder=fmt.NO_VALUE,
        width="stretch",
        key="deployments_alias_events",
        column_config={
            "when": st.column_config.DatetimeColumn("when", format="YYYY-MM-DD HH:mm:ss"),
            "reason": st.column_config.TextColumn("reason", width="large"),
        },
    )
    st.caption(f"Newest first. Times in local time, {fmt.local_tz_name()}.")

st.subheader("Candidates waiting for approval")
waiting = queries.candidates()
if not waiting:
    policy = queries.gate_policy()
    st.caption("None waiting." + (" Gate policy `auto`: candidates that pass deploy at once." if policy == "auto"
                                  else " Gate policy `manual`: candidates that pass wait here for an operator."))
for cand in waiting:
    with st.container(border=True):
        st.markdown(f"**{fmt.md(cand.label)}** passed the gate"
                    + (f" on {cand.gated_at:%Y-%m-%d %H:%M}" if cand.gated_at else ""))
        for line in cand.reasons:
            st.caption(fmt.md(line))
        if auth.is_operator():
            with st.form(f"decide_{cand.version_id}", clear_on_submit=False):
                why = st.text_input("Reason (required)", key=f"decide_reason_{cand.version_id}")
                c1, c2 = st.columns(2)
                approve = c1.form_submit_button("Approve and deploy", type="primary",
                                                key=f"decide_approve_{cand.version_id}")
                reject = c2.form_submit_button("Reject", key=f"decide_reject_{cand.version_id}")
            if approve or reject:
                try:
                    cid = services.request_candidate_decision("approve" if approve else "reject", cand.version_id, why)
                except services.RequestError as exc:
                    st.error(fmt.md(exc), icon=":material/error:")
                else:
                    st.success(f"{'Approval' if approve else 'Rejection'} requested (command #{cid}); "
                               "the scheduler applies it.")

st.subheader("Roll back")
choices = queries.rollback_choices()
if choices.champion_id is None:
    st.caption("Nothing to roll back: there is no champion yet.")
elif not choices.options:
    st.caption("Nothing to roll back to: the champion is the only version.")
elif not auth.is_operator():
    st.caption("Only an operator can request a rollback.")
else:
    ids = list(choices.options)
    with st.form("rollback_form", clear_on_submit=False):
        target = st.selectbox(
            "Roll the champion back to",
            options=ids,
            index=ids.index(choices.default_id) if choices.default_id in choices.options else 0,
            format_func=choices.options.get,
            key="rollback_target",
        )
        reason = st.text_input("Reason (required)", key="rollback_reason", placeholder="e.g. MCC dropped on rain")
        submitted = st.form_submit_button("Request rollback", type="primary", key="rollback_submit")
    if submitted:
        try:
            command_id = services.request_rollback(target, reason)
        except services.RequestError as exc:
            st.error(fmt.md(exc), icon=":material/error:")
        else:
            st.success(f"Rollback requested (command #{command_id}); the scheduler applies it.")
    st.caption(f"Requests are applied by the scheduler, not by the dashboard. Acting as {fmt.md(auth.actor())}.")

st.subheader("Recent commands")
commands = queries.commands()
if not commands:
    st.caption("No commands yet.")
else:
    widgets.commands_table(commands, key="deployments_commands")
