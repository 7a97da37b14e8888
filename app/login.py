"""Who is using the dashboard: a login when ``WMSTUDIO_APP_USERS`` is set, else the local user.

The dashboard can accept or dismiss curation findings and promote models, and it holds the store
and Label Studio credentials, so beyond loopback nobody reaches a page without signing in, and the
reviewer recorded with each decision is the signed-in name, never a free-text box. On loopback
without configured users (``make run``) the dashboard stays open and records the OS user.

Streamlit keeps the sign-in in the browser session (a reload asks again). Password checks use
scrypt (:mod:`wmstudio.passwords`); each failure costs the caller a second.
"""

from __future__ import annotations

import getpass
import time

import streamlit as st

from wmstudio.exposure import InsecureDeployment, require_protection
from wmstudio.passwords import PasswordEntryError, parse_users, verify
from wmstudio.settings import Settings

SESSION_KEY = "signed_in_user"
FAILURE_DELAY = 1.0  # seconds: slows password guessing through the form


def local_user() -> str:
    """The OS account running the dashboard: the reviewer on an open loopback dashboard."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers with an arbitrary uid)
        return "local"


def bind_address(settings: Settings) -> str:
    """Where the dashboard listens: Streamlit's ``server.address``, else the project's bind host."""
    return st.get_option("server.address") or settings.api_host


def signed_in_user(settings: Settings) -> str:
    """The user's name; renders the sign-in form and stops the script until someone signs in."""
    try:
        users = parse_users(settings.app_users)
    except PasswordEntryError as exc:
        st.error(f"The dashboard's logins are misconfigured: {exc}")
        st.stop()
    if not users:
        try:
            require_protection(
                "dashboard", bind_address(settings), False, settings.allow_insecure, "WMSTUDIO_APP_USERS"
            )
        except InsecureDeployment as exc:
            st.error(str(exc))
            st.stop()
        return local_user()
    name = st.session_state.get(SESSION_KEY)
    if name in users:
        st.sidebar.caption(f"Signed in as **{name}**")
        if st.sidebar.button("Sign out", key="sign_out"):
            del st.session_state[SESSION_KEY]
            st.rerun()
        return name
    _sign_in_form(users)
    st.stop()
    raise AssertionError("unreachable")  # st.stop() raises


def _sign_in_form(users: dict[str, str]) -> None:
    st.title("Watermark Studio")
    with st.form("sign_in"):
        name = st.text_input("User", key="sign_in_user")
        password = st.text_input("Password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    if verify(users, name, password):
        st.session_state[SESSION_KEY] = name
        st.rerun()
    time.sleep(FAILURE_DELAY)
    st.error("Unknown user or wrong password.")
