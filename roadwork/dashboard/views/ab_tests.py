"""A/B tests: every test with its status and verdict, one test's paired results; operators ask for a new test
(a `create_ab_test` command that the scheduler creates and runs)."""

import streamlit as st

from roadwork.dashboard import auth, services, widgets
from roadwork.dashboard import formatting as fmt
from roadwork.dashboard import ops_services as ops
from roadwork.dashboard.charts import ab_tests as charts
from roadwork.dashboard.queries import ab_tests as queries

DATETIME_COLUMN = {"format": "YYYY-MM-DD HH:mm:ss"}
VERDICTS = {"a_better": "A is better", "b_better": "B is better", "no_difference": "no significant difference",
            "insufficient": "not enough challenges for a verdict"}

st.title("A/B tests")
operator = auth.is_operator()
tz = fmt.local_tz_name()

# --- create (operators) ---------------------------------------------------------------------------------------
if operator:
    st.subheader("New test")
    choices = queries.version_choices()
    versions = choices.options
    if len(versions) < 2:
        st.caption("An A/B test needs two versions in the registry.")
    else:
        ids = list(versions)
        champion = choices.champion_id if choices.champion_id in versions else ids[-1]
        with st.form("act_ab_form"):
            c1, c2 = st.columns(2)
            version_a = c1.selectbox("A (baseline)", ids, index=ids.index(champion), format_func=versions.get,
                                     key="act_ab_a")
            version_b = c2.selectbox("B (challenger)", ids, index=0 if ids[0] != champion else 1,
                                     format_func=versions.get, key="act_ab_b")
            sample_size = st.number_input("Sample size (paired challenges)", min_value=2, value=1000, step=100,
                                          key="act_ab_n")
            reason = st.text_input("Reason (required)", key="act_ab_reason", placeholder="e.g. is 0.3.0 better?")
            submitted = st.form_submit_button("Request A/B test", type="primary", key="act_ab_submit")
        st.caption(f"Fewer than {queries.MIN_N} challenges give no verdict (`insufficient`).")
        if submitted:
            try:
                command_id = ops.request_ab_test(version_a, version_b, sample_size, reason, auth.actor())
            except services.RequestError as exc:
                st.error(fmt.md(exc), icon=":material/error:")
            else:
                st.success(f"A/B test requested (command #{command_id}); the scheduler creates and runs it: "
                           "see its outcome below.", icon=":material/check_circle:")

# --- requests and their outcome ------------------------------------------------------------------------------
commands = queries.commands()


@st.fragment(run_every=5 if widgets.any_pending(commands) else None)
def show_commands() -> None:
    latest = queries.commands()
    if latest:
        st.caption("Requested tests (the scheduler creates and runs them):")
        widgets.commands_table(latest, key="ab_commands")


show_commands()

# --- tests -----------------------------------------------------------------------------------------------------
st.subheader("Tests")
tests = queries.ab_tests()
if not tests:
    st.info("No A/B tests yet.", icon=":material/info:")
    st.stop()

st.dataframe(
    [
        {
            "#": t.id,
            "name": t.name,
            "A": t.version_a,
            "B": t.version_b,
            "sample size": t.sample_size,
            "mode": t.mode,
            "status": t.status,
            "verdict": t.verdict,
            "created by": t.created_by,
            "created": t.created_at,
        }
        for t in tests
    ],
    hide_index=True, placeholder=fmt.NO_VALUE,
    width="stretch",
    key="ab_tests_table",
    column_config={"created": st.column_config.DatetimeColumn("created", **DATETIME_COLUMN)},
)
st.caption(f"Newest first. Times in local time, {tz}.")

by_id = {t.id: t for t in tests}
test_id = st.selectbox("Test", list(by_id), format_func=lambda i: f"#{i} {by_id[i].name} ({by_id[i].status})",
                       key="ab_selected_test")
test = by_id[test_id]
result = queries.ab_result(test_id)
if result is None:
    st.caption(f"No result yet: the test is {test.status}.")
    st.stop()

diff, mcnemar = result.diff, result.diff.get("mcnemar", {})
st.markdown(f"**Verdict: {VERDICTS.get(result.verdict, result.verdict)}** (`{result.verdict}`), "
            f"on {result.n} paired challenges, {result.created_at:%Y-%m-%d %H:%M}.")
if diff.get("reason"):
    st.caption(diff["reason"])
for warning in diff.get("warnings", []):
    st.warning(warning, icon=":material/warning:")

m1, m2, m3 = st.columns(3)
m1.metric("MCC(B) - MCC(A)", f"{diff['mcc_diff']:+.4f}")
m1.caption(f"{1 - diff.get('alpha', 0.05):.0%} CI [{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}]")
m2.metric("McNemar p", f"{mcnemar.get('p', float('nan')):.3g}")
m2.caption(f"A only right {mcnemar.get('b', '-')}, B only right {mcnemar.get('c', '-')} "
           f"({mcnemar.get('method', '-')})")
m3.metric("Expected reward (B - A)", f"{diff.get('expected_reward_diff', 0.0):+.4f}")

arms = [(f"A: {test.version_a}", result.arm_a), (f"B: {test.version_b}", result.arm_b)]
left, right = st.columns([2, 3])
left.plotly_chart(
    charts.ab_arm_mcc([name for name, _ in arms], [a["mcc"] for _, a in arms],
                      [a["mcc_ci_low"] for _, a in arms], [a["mcc_ci_high"] for _, a in arms]),
    key="ab_arm_chart",
)
right.dataframe(
    [
        {
            "arm": name,
            "MCC": arm["mcc"],
            "MCC CI": f"[{arm['mcc_ci_low']:.3f}, {arm['mcc_ci_high']:.3f}]",
            "accuracy": arm["accuracy"],
            "expected reward": arm["expected_reward"],
        }
        for name, arm in arms
    ],
    hide_index=True, placeholder=fmt.NO_VALUE,
    width="stretch",
    key="ab_arms_table",
    column_config={"MCC": st.column_config.NumberColumn(format="%.4f"),
                   "accuracy": st.column_config.NumberColumn(format="percent"),
                   "expected reward": st.column_config.NumberColumn(format="%.4f")},
)
