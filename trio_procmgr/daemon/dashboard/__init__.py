"""The dashboard's static assets (SPEC §18), shipped inside the package and served by the
daemon itself: no build step, no CDN, nothing fetched from anywhere else.

:func:`asset` maps a URL path to (bytes, content type); the page learns whether the
listener is read-only from a ``data-access`` attribute filled in here, so it can say so
before any (token-protected) request is made.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

#: URL path -> (file in this package, content type).
ASSETS = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/assets/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/assets/app.css": ("app.css", "text/css; charset=utf-8"),
    "/assets/favicon.svg": ("favicon.svg", "image/svg+xml"),
}

ACCESS_MARK = b"__ACCESS__"

#: Headers of every asset: the page may load and connect only to its own origin.
SECURITY_HEADERS = [
    ("Content-Security-Policy",
     "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
     "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-cache"),
]


@lru_cache(maxsize=None)
def _read(filename: str) -> bytes:
    return resources.files(__name__).joinpath(filename).read_bytes()


def is_asset(path: str) -> bool:
    return path in ASSETS


def asset(path: str, *, read_only: bool) -> tuple[bytes, str]:
    """The body and content type served at ``path`` (KeyError when there is none)."""
    filename, ctype = ASSETS[path]
    body = _read(filename)
    if filename == "index.html":
        body = body.replace(ACCESS_MARK, b"read-only" if read_only else b"token")
    return body, ctype
