"""The operator console at /console/: static files only; everything it shows comes from /v1.

The console is plain ES modules, CSS and hand-drawn SVG: no build step, no CDN, no third-party
code. It signs in with an API key kept in sessionStorage and sent as the bearer token (no
cookies, so no CSRF surface). The Content-Security-Policy allows only this origin's scripts,
styles and API calls, no inline code, and no framing.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, redirect, send_from_directory
from werkzeug.wrappers import Response as BaseResponse

ASSETS = Path(__file__).resolve().parent.parent / "console"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

bp = Blueprint("console", __name__)


@bp.get("/console")
def console_root() -> BaseResponse:
    return redirect("/console/", code=308)


@bp.get("/console/", defaults={"asset": "index.html"})
@bp.get("/console/<path:asset>")
def console_asset(asset: str) -> Response:
    """One file of the console (404 for anything not shipped; no directory listing)."""
    response = send_from_directory(ASSETS, asset, max_age=0)
    # Revalidate every time (ETag / Last-Modified answer 304): a new release shows at once.
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.after_request
def _secure(response: Response) -> Response:
    response.headers.update(SECURITY_HEADERS)
    return response
