"""The dashboard's web server: Streamlit's own server running `app.py`, without its metrics endpoint.

Streamlit serves `/_stcore/metrics` to anyone who can reach the port, and no setting of this Streamlit version
turns it off; the middleware here answers 404 for it before Streamlit sees the request. `roadwork dashboard`
runs this file with `streamlit run` (Streamlit finds `app` and serves it, with the usual --server.* flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from streamlit.starlette import App

BLOCKED_SUFFIXES = ("/_stcore/metrics",)  # under any server.baseUrlPath


class NoMetrics:
    """ASGI middleware: 404 for Streamlit's metrics endpoint, everything else passes through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].rstrip("/").endswith(BLOCKED_SUFFIXES):
            await PlainTextResponse("not found", status_code=404)(scope, receive, send)
            return
        await self.app(scope, receive, send)


app = App(str(Path(__file__).with_name("app.py")), middleware=[Middleware(NoMetrics)])
