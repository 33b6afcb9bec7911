"""Users (operators only): who may sign in and as what; add a user, change a role, reset a password, disable.

Every change goes through `roadwork.platform.users`, which checks the operator against the users table again,
requires the reason and writes the audit event. Passwords are typed, never shown; hashes never leave the service.
"""

import streamlit as st

from roadwork.dashboard import auth, context
from roadwork.dashboard import formatting as fmt
from roadwork.platform import users

FLASH_KEY = "users_flash"  # the outcome of the last change, shown after the rerun that refreshes the table

me = auth.require_login()  # the entrypoint has signed in already; this keeps the page closed on its own too
st.title("Users")
if not auth.is_operator():
    st.error("Operators only: ask an operator if you need access to user management.", icon=":material/block:")
    st.stop()

engine = context.engine()
flash = st.session_state.pop(FLASH_KEY, None)
if flash is not None:
    kind, message = flash
    (st.success if kind == "success" else st.error)(fmt.md(message))


def apply(change, success: str) -> None:  # noqa: ANN001 - a no-argument callable that calls the service
    """Run one change; show its outcome (after a rerun on success, so that the table above is fresh)."""
    try:
        change()
    except (ValueError, PermissionError) as exc:
        st.error(fmt.md(exc), icon=":material/error:")
    else:
        st.session_state[FLASH_KEY] = ("success", success)
        st.rerun()


everyone = users.list_users(engine)
st.dataframe(
    [
        {"username": u.username, "role": u.role, "created": fmt.local(u.created_at), "disabled": u.disabled}
        for u in everyone
    ],
    hide_index=True, placeholder=fmt.NO_VALUE,
    width="stretch",
    key="users_table",
    column_config={"created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm")},
)
st.caption(f"Times in local time, {fmt.local_tz_name()}. Acting as {fmt.md(me.username)}; every change is audited.")
names = [u.username for u in everyone]
enabled = [u.username for u in everyone if not u.disabled]

st.subheader("Add a user")
with st.form("users_add_form", clear_on_submit=True):
    new_name = st.text_input("Username", key="users_add_username", help="3-64 characters: a-z, 0-9, _ . -")
    new_password = st.text_input("Password", type="password", key="users_add_password",
                                 help=f"At least {users.MIN_PASSWORD_LEN} characters.", autocomplete="new-password")
    new_role = st.selectbox("Role", users.ROLES, key="users_add_role")
    add_reason = st.text_input("Reason (required)", key="users_add_reason")
    if st.form_submit_button("Add user", type="primary", key="users_add_submit"):
        apply(lambda: users.create_user(engine, new_name.strip(), new_password, new_role, me.username,
                                        reason=add_reason),
              f"User {new_name.strip()!r} added as {new_role}.")

st.subheader("Change a role")
with st.form("users_role_form", clear_on_submit=True):
    role_name = st.selectbox("User", names, key="users_role_username")
    role = st.selectbox("New role", users.ROLES, key="users_role_role")
    role_reason = st.text_input("Reason (required)", key="users_role_reason")
    if st.form_submit_button("Change role", key="users_role_submit"):
        apply(lambda: users.set_role(engine, role_name, role, me.username, role_reason),
              f"User {role_name!r} now has the role {role}.")

st.subheader("Reset a password")
with st.form("users_reset_form", clear_on_submit=True):
    reset_name = st.selectbox("User", names, key="users_reset_username")
    reset_password = st.text_input("New password", type="password", key="users_reset_password",
                                   help=f"At least {users.MIN_PASSWORD_LEN} characters.", autocomplete="new-password")
    reset_reason = st.text_input("Reason (required)", key="users_reset_reason")
    if st.form_submit_button("Reset password", key="users_reset_submit"):
        apply(lambda: users.reset_password(engine, reset_name, reset_password, me.username, reset_reason),
              f"Password of {reset_name!r} reset; tell them the new one out of band.")

st.subheader("Disable a user")
with st.form("users_disable_form", clear_on_submit=True):
    disable_name = st.selectbox("User", enabled, key="users_disable_username")
    disable_reason = st.text_input("Reason (required)", key="users_disable_reason")
    if st.form_submit_button("Disable user", key="users_disable_submit"):
        apply(lambda: users.disable_user(engine, disable_name, me.username, disable_reason),
              f"User {disable_name!r} disabled; they can no longer sign in.")
