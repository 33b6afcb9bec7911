"""Models: every version with its metrics, MCC across versions, MCC per condition across versions (heatmap), and
for one version: a student beside its teacher (same replay, per condition, size, CPU latency), its condition cells,
whether training applied its calibration (held-out check), threshold sweep, calibration, validator score, TTA,
ablation and lineage."""

import json

import streamlit as st

from roadwork.dashboard import formatting as fmt
from roadwork.dashboard.charts import models as charts
from roadwork.dashboard.queries import models as queries


def fmt_mcc(value: float | None) -> str:
    return fmt.NO_VALUE if value is None else f"{value:.3f}"


def fmt_number(value: float | None, spec: str) -> str | None:
    return None if value is None else format(value, spec)


def ratio_text(teacher: float | None, student: float | None, what: str) -> str | None:
    """"3.2x fewer parameters" style text, None when either value is missing or zero."""
    if not teacher or not student:
        return None
    ratio = teacher / student
    return f"{ratio:.1f}x {what[0]}" if ratio >= 1 else f"{1 / ratio:.1f}x {what[1]}"


def show_teacher_and_student(pair: queries.TeacherStudent) -> None:
    """The student beside its teacher: replay MCC overall and per condition cell on the same replay, size, and
    CPU latency per image as measured at distill time."""
    st.markdown("#### Teacher and student")
    teacher_name = fmt.md(pair.teacher_label or "its teacher (not in the registry)")
    student_name = fmt.md(pair.student_label)
    kind = f"a {fmt.md(pair.student_kind)} student" if pair.student_kind else "a student"
    cut = "" if pair.threshold is None else f", its calibrated cut {pair.threshold:.3f} baked into its head"
    if pair.selected_is_student:
        st.caption(f"This version is {kind} of {teacher_name} (stock architecture{cut}).")
    else:
        st.caption(f"Its newest student: {student_name}, {kind} (stock architecture{cut}). Deploying with "
                   "deploy.format stock publishes that student.")
    t, s = pair.teacher, pair.student
    rows = [
        ("replay MCC", fmt_number(pair.teacher_mcc, ".3f"), fmt_number(pair.student_mcc, ".3f"),
         fmt_number(pair.mcc_diff, "+.3f")),
        ("parameters", fmt_number(t.parameters, ","), fmt_number(s.parameters, ","),
         None if t.parameters is None or s.parameters is None else f"{s.parameters - t.parameters:+,}"),
        ("weights MB", fmt_number(t.weights_mb, ".2f"), fmt_number(s.weights_mb, ".2f"),
         None if t.weights_mb is None or s.weights_mb is None else f"{s.weights_mb - t.weights_mb:+.2f}"),
        ("CPU ms per image", fmt_number(t.cpu_ms_per_image, ".1f"), fmt_number(s.cpu_ms_per_image, ".1f"),
         None if t.cpu_ms_per_image is None or s.cpu_ms_per_image is None
         else f"{s.cpu_ms_per_image - t.cpu_ms_per_image:+.1f}"),
    ]
    c1, c2, c3 = st.columns(3)
    c1.metric("Teacher replay MCC", fmt_mcc(pair.teacher_mcc))
    c2.metric("Student replay MCC", fmt_mcc(pair.student_mcc),
              delta=None if pair.mcc_diff is None else f"{pair.mcc_diff:+.3f}",
              help="The student's MCC on the very replay its teacher was scored on; the delta is student - teacher.")
    c3.metric("Student CPU ms per image", fmt.NO_VALUE if s.cpu_ms_per_image is None else f"{s.cpu_ms_per_image:.1f}",
              help="Batch 1, preprocessing included, median of a few runs, measured when it was distilled.")
    st.dataframe(
        [{"measure": m, "teacher": a, "student": b, "student - teacher": d} for m, a, b, d in rows],
        hide_index=True, placeholder=fmt.NO_VALUE, width="stretch", key="models_teacher_student",
    )
    notes = [x for x in (ratio_text(t.parameters, s.parameters, ("fewer parameters", "more parameters")),
                         ratio_text(t.cpu_ms_per_image, s.cpu_ms_per_image, ("faster on the CPU",
                                                                            "slower on the CPU"))) if x]
    setup = pair.latency_setup
    runs = setup["runs"] if isinstance(setup.get("runs"), int) else "a few"
    threads = f", {setup['torch_threads']} torch threads" if isinstance(setup.get("torch_threads"), int) else ""
    measured = ("Size and latency were not measured when this student was distilled (an older distillation)."
                if t.parameters is None and s.parameters is None and s.cpu_ms_per_image is None
                else f"Size and CPU latency measured when it was distilled (batch 1, preprocessing included, median "
                     f"of {runs} runs{threads}).")
    st.caption((f"The student: {', '.join(notes)}. " if notes else "") + measured)

    if pair.dataset is None:
        st.info("The two share no replay evaluation yet: run `roadwork evaluate VERSION --replay N --seed S` on "
                "both with the same N and S to compare them challenge for challenge.", icon=":material/info:")
        return
    replay = ", ".join(x for x in (None if pair.replay_n is None else f"{pair.replay_n} challenges",
                                   None if pair.replay_seed is None else f"seed {pair.replay_seed}") if x)
    st.caption(f"Both on the same replay ({fmt.md(pair.dataset)}{'; ' + replay if replay else ''}): the newest one "
               "both were evaluated on.")
    if not pair.cells:
        st.caption("That replay stored no condition cells.")
        return
    left, right = st.columns([3, 2])
    left.plotly_chart(
        charts.teacher_student_conditions([c.label for c in pair.cells], [c.teacher_mcc for c in pair.cells],
                                          [c.student_mcc for c in pair.cells], [c.n for c in pair.cells]),
        key="models_teacher_student_chart",
    )
    right.dataframe(
        [{"condition": c.condition, "value": c.value, "n": c.n, "teacher MCC": c.teacher_mcc,
          "student MCC": c.student_mcc, "student - teacher": c.diff} for c in pair.cells],
        hide_index=True, placeholder=fmt.NO_VALUE, width="stretch", key="models_teacher_student_cells",
        column_config={"teacher MCC": st.column_config.NumberColumn(format="%.3f"),
                       "student MCC": st.column_config.NumberColumn(format="%.3f"),
                       "student - teacher": st.column_config.NumberColumn(format="%+.3f")},
    )


st.title("Models")
rows = queries.versions()
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
            "eval kind": r.eval_kind,
            "parent": r.parent,
            "data fingerprint": r.data_fingerprint,
        }
        for r in rows
    ],
    hide_index=True, placeholder=fmt.NO_VALUE,
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
st.caption(f"Latest evaluation of each version (any kind). Times in local time, {fmt.local_tz_name()}.")

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

st.subheader("MCC per condition")
matrix = queries.condition_matrix()
if not matrix.columns:
    st.info("No condition cells yet: run `roadwork evaluate VERSION --replay N` to measure MCC per condition.",
            icon=":material/info:")
else:
    st.plotly_chart(
        charts.condition_heatmap(matrix.rows, matrix.columns, matrix.mcc, matrix.n, matrix.ci_low,
                                 matrix.ci_high, reference_row=matrix.champion_row),
        key="models_condition_heatmap",
    )
    partial = matrix.total_versions > len(matrix.rows)
    shown = f"the newest {len(matrix.rows)} of {matrix.total_versions} versions" if partial else "every version"
    reference = ("colored by the difference to the champion (★; blank where the champion has no such cell)"
                 if matrix.champion_row is not None else "colored by MCC (no champion to compare with)")
    st.caption(f"Cells of each version's latest replay evaluation (else its latest validation); {shown}, "
               f"newest first, {reference}. Hover for n and the confidence interval.")

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
    f"Created by {fmt.md(selected.created_by)}; code revision {fmt.md(selected.code_revision or '-')}; "
    f"parent {fmt.md(selected.parent or '-')}."
)

pair = queries.teacher_student(selected.id)
if pair is not None:
    show_teacher_and_student(pair)

detail = queries.version_detail(selected.id)  # its latest replay evaluation, else its latest of any kind
if detail.evaluation_id is None:
    st.caption("No evaluation of this version yet.")
else:
    cells = queries.condition_cells(detail.evaluation_id)
    if not cells:
        st.caption(f"Its latest {detail.evaluation_kind} evaluation has no condition cells.")
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
            hide_index=True, placeholder=fmt.NO_VALUE,
            width="stretch",
            key="models_condition_cells",
            column_config={
                "MCC": st.column_config.NumberColumn(format="%.3f"),
                "accuracy": st.column_config.NumberColumn(format="percent"),
            },
        )

st.markdown("#### Calibration")
decision = detail.calibration_decision
if decision is None:
    st.caption("No calibration decision stored with this version (trained before the held-out check, or not "
               "calibrated).")
else:
    fitted = fmt.NO_VALUE if decision.fitted_threshold is None else f"{decision.fitted_threshold:.3f}"
    if decision.applied:
        st.success(f"Calibration applied: the fitted cut {fitted} is mapped onto the validators' 0.5.",
                   icon=":material/check_circle:")
    else:
        st.info(f"Calibration not applied: the fitted cut {fitted} did not hold up on the held-out replay, so the "
                "model answers its raw probability (identity, cut 0.5).", icon=":material/block:")
    c1, c2, c3 = st.columns(3)
    c1.metric("Held-out MCC, raw", fmt_mcc(decision.held_out_mcc_before))
    c2.metric("Held-out MCC, calibrated", fmt_mcc(decision.held_out_mcc_after),
              delta=None if decision.held_out_diff is None else f"{decision.held_out_diff:+.3f}")
    c3.metric("Fit replay MCC, raw -> calibrated",
              f"{fmt_mcc(decision.fit_mcc_before)} -> {fmt_mcc(decision.fit_mcc_after)}")
    ci = ("" if decision.held_out_ci_low is None
          else f"paired bootstrap 95% CI of the difference [{decision.held_out_ci_low:+.3f}, "
               f"{decision.held_out_ci_high:+.3f}]; ")
    st.caption(f"Fitted on the replay with seed {decision.fit_seed}, checked on {decision.held_out_n} held-out "
               f"challenges (seed {decision.held_out_seed}); {ci}{decision.reason}. Rule: {decision.rule}.")

st.markdown("#### Replay evaluation")
if detail.evaluation_id is None:
    st.info("No evaluation of this version yet: run `roadwork evaluate VERSION --replay N`.", icon=":material/info:")
else:
    st.caption(
        f"Latest {detail.evaluation_kind} evaluation #{detail.evaluation_id} ({fmt.md(detail.dataset)}), n={detail.n}, "
        f"at {detail.evaluated_at:%Y-%m-%d %H:%M}."
        + ("" if detail.evaluation_kind == "replay" else " No replay evaluation: run `roadwork evaluate VERSION --replay N`.")
    )
    v1, v2, v3, v4 = st.columns(4)
    ci = "" if detail.mcc_ci_low is None else f"95% CI [{detail.mcc_ci_low:.3f}, {detail.mcc_ci_high:.3f}]"
    v1.metric("MCC", f"{detail.mcc:.3f}", help=f"Of the answers sent (after calibration). {ci}".strip())
    score = detail.validator_score
    v2.metric("Validator score (final)", fmt.NO_VALUE if "final_score" not in score else f"{score['final_score']:.3f}",
              help="The validator's running score after this stream of challenges (EMA of rewards).")
    final = detail.expected_reward.get("final_score") or {}
    v3.metric("Expected score", fmt.NO_VALUE if "mean" not in final else f"{final['mean']:.3f}",
              help="Mean final score over random orderings of the same answers.")
    reward = detail.expected_reward.get("mean_reward") or {}
    v4.metric("Expected mean reward", fmt.NO_VALUE if "mean" not in reward else f"{reward['mean']:.3f}")
    notes = [ci] if ci else []
    notes += [f"expected {name.replace('_', ' ')} 95% CI [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
              for name, v in (("final_score", final), ("mean_reward", reward)) if "ci_low" in v]
    if notes:
        st.caption("; ".join(notes) + ".")

    left, right = st.columns(2)
    with left:
        if detail.sweep is None:
            st.caption("No threshold sweep stored with this evaluation.")
        else:
            st.plotly_chart(
                charts.threshold_sweep(detail.sweep.thresholds, detail.sweep.mcc,
                                       best_threshold=detail.sweep.best_threshold,
                                       best_mcc=detail.sweep.best_mcc,
                                       calibrated_threshold=detail.calibration_threshold),
                key="models_sweep_chart",
            )
    with right:
        if detail.calibration_threshold is None:
            st.caption("No calibration stored with this evaluation.")
        else:
            st.plotly_chart(charts.calibration_curve(detail.calibration_threshold),
                            key="models_calibration_chart")
    if detail.before_after:
        st.dataframe(
            [{"metric": r["metric"], "before calibration": r["before"], "after calibration": r["after"]}
             for r in detail.before_after],
            hide_index=True, placeholder=fmt.NO_VALUE, key="models_before_after",
            column_config={"before calibration": st.column_config.NumberColumn(format="%.3f"),
                           "after calibration": st.column_config.NumberColumn(format="%.3f")},
        )
    if detail.tta:
        st.markdown("**Test-time augmentation** (each variant against none, on the same replay)")
        st.dataframe(list(detail.tta), hide_index=True, placeholder=fmt.NO_VALUE, width="stretch", key="models_tta")
if detail.ablation:
    st.markdown("**Ablation**")
    st.dataframe(list(detail.ablation), hide_index=True, placeholder=fmt.NO_VALUE, width="stretch",
                 key="models_ablation")

st.markdown("#### Lineage")
if len(detail.lineage) <= 1:
    st.caption("No parent: this version was trained from scratch.")
st.dataframe(
    [
        {
            "generation": "this version" if r.depth == 0 else ("parent" if r.depth == 1 else f"ancestor -{r.depth}"),
            "lineage version": r.label,
            "created": r.created_at,
            "MCC": r.mcc,
            "MCC from": r.mcc_kind,
            "training MCC": r.training_mcc,
            "data fingerprint": r.data_fingerprint,
            "code revision": r.code_revision,
            "hard negatives": r.hard_negative_set,
        }
        for r in detail.lineage
    ],
    hide_index=True, placeholder=fmt.NO_VALUE,
    width="stretch",
    key="models_lineage",
    column_config={
        "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "MCC": st.column_config.NumberColumn(format="%.3f"),
        "training MCC": st.column_config.NumberColumn(format="%.3f"),
    },
)
st.caption(f"The version and up to {queries.LINEAGE_DEPTH} ancestors, parent first.")

with st.expander("Training config (JSON)", expanded=False, key="models_config_expander"):
    st.code(json.dumps(selected.config, indent=2, sort_keys=True, default=str), language="json")
