"""Who is signed in to this dashboard session, and as what.

The signed-in user lives in `st.session_state[SESSION_KEY]` as a `SignedIn`; it expires after
`SESSION_LIFETIME`, and `require_login()` also drops it once the user is disabled or removed. Pages show controls
only to operators (`is_operator()`), and every write in `services` checks the role again against the users
table, so a viewer cannot change anything even by crafting a request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import streamlit as st
from sqlalchemy import Engine

from roadwork.clock import utcnow
from roadwork.dashboard import context
from roadwork.dashboard import formatting as fmt
from roadwork.platform import users

SESSION_KEY = "auth_user"
ROLES = users.ROLES  # ("viewer", "operator")


@dataclass(frozen=True)
class SignedIn:
    username: str
    role: str  # viewer | operator
    expires_at: dt.datetime  # naive UTC


def current_user() -> SignedIn | None:
    """The signed-in user of this session, or None (also once the sign-in has expired)."""
    user = st.session_state.get(SESSION_KEY)
    if user is None:
        return None
    if not isinstance(user, SignedIn) or user.expires_at <= utcnow():
        st.session_state.pop(SESSION_KEY, None)
        return None
    return user


def is_operator() -> bool:
    user = current_user()
    return user is not None and user.role == "operator"


def actor() -> str:
    """The name written into commands and audit events."""
    user = current_user()
    return user.username if user else "anonymous"


# --- signing in and out -------------------------------------------------------------------------------------

SESSION_LIFETIME = dt.timedelta(hours=8)  # a sign-in lasts one working day
NOTICE_KEY = "auth_notice"  # why the sign-in form is shown again (expired, disabled), for the next run
FIRST_RUN_HELP = (
    "No users yet. On the machine that runs Roadwork Ops, create the first operator with "
    "`roadwork user add NAME --role operator`, then sign in here."
)


def _engine() -> Engine:
    return context.engine()


def client_address() -> str:
    """The client's IP address as Streamlit sees it (the peer of the web socket: behind a reverse proxy, the
    proxy's), or "unknown" (no address, as in tests). Forwarded headers are not trusted: a client could choose
    its own and so escape the limit per address."""
    try:
        address = st.context.ip_address
    except (AttributeError, RuntimeError):  # older Streamlit, or no script run
        address = None
    return address if isinstance(address, str) and address else "unknown"  # (AppTest gives a mock object)


def sign_in(user: users.UserInfo, now: dt.datetime | None = None) -> SignedIn:
    """Put `user` into this session until `now + SESSION_LIFETIME`."""
    signed = SignedIn(username=user.username, role=user.role, expires_at=(now or utcnow()) + SESSION_LIFETIME)
    st.session_state[SESSION_KEY] = signed
    st.session_state.pop(NOTICE_KEY, None)
    return signed


def sign_out(notice: str | None = None) -> None:
    """Forget the signed-in user of this session; `notice` is shown above the sign-in form."""
    st.session_state.pop(SESSION_KEY, None)
    if notice:
        st.session_state[NOTICE_KEY] = notice


def sign_in_form() -> SignedIn | None:
    """The sign-in form; on success the user is signed in and the app reruns (so it never returns them)."""
    st.title("Roadwork Ops")
    st.subheader("Sign in")
    engine = _engine()
    if users.count_users(engine) == 0:
        st.info(FIRST_RUN_HELP, icon=":material/info:")
    notice = st.session_state.get(NOTICE_KEY)
    if notice:
        st.warning(fmt.md(notice), icon=":material/lock_clock:")
    # clear_on_submit: the browser empties the form after each attempt; once signed in, the form (and its
    # widget state) is gone.
    with st.form("signin_form", clear_on_submit=True):
        username = st.text_input("Username", key="signin_username", autocomplete="username")
        password = st.text_input("Password", type="password", key="signin_password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary", key="signin_submit")
    if not submitted:
        return None
    try:
        user = users.authenticate(engine, username, password, address=client_address(),
                                  limits=context.settings().auth)
    except users.SignInLocked as exc:
        st.error(fmt.md(exc), icon=":material/lock:")
        return None
    if user is None:
        st.error("Wrong username or password.", icon=":material/error:")
        return None
    signed = sign_in(user)
    st.rerun()
    return signed  # not reached: st.rerun() ends this run


def _sign_in_page() -> None:
    sign_in_form()


def _still_valid(user: SignedIn) -> SignedIn | None:
    """`user` as the users table has it now: None once removed or disabled, the new role once changed."""
    info = users.get_user(_engine(), user.username)
    if info is None or info.disabled:
        sign_out(f"The account {user.username!r} is no longer enabled; sign in again.")
        return None
    if info.role != user.role:
        user = SignedIn(username=user.username, role=info.role, expires_at=user.expires_at)
        st.session_state[SESSION_KEY] = user
    return user


def require_login() -> SignedIn:
    """The signed-in user; when there is none, only the sign-in form is shown and the run stops.

    Safe to call more than once per run (the entrypoint and a page). The form is shown through a navigation of
    its own, so that no other page is reachable (nor listed) while nobody is signed in.
    """
    stored = st.session_state.get(SESSION_KEY)
    user = current_user()
    if user is None and isinstance(stored, SignedIn):
        sign_out("Your sign-in has expired; sign in again.")
    if user is not None:
        user = _still_valid(user)
    if user is None:
        st.navigation(
            [st.Page(_sign_in_page, title="Sign in", icon=":material/login:", url_path="sign-in", default=True)],
            position="hidden",
        ).run()
        st.stop()
    return user


def sign_out_button() -> None:
    """'Signed in as NAME (role)' and a sign-out button, in the sidebar."""
    user = current_user()
    if user is None:
        return
    st.sidebar.caption(f"Signed in as **{fmt.md(user.username)}** ({user.role})")
    if st.sidebar.button("Sign out", key="auth_sign_out", icon=":material/logout:"):
        users.record_sign_out(_engine(), user.username)
        sign_out()
        st.rerun()
