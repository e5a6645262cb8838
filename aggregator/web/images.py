"""The review desk's images: shown through ``/review/images``, never loaded from upstream.

A draft's images are the source's: a tracking pixel, or an address inside the network
(``http://169.254.169.254/…``) that the *reviewer's browser* would request. So the desk's
pages point every ``<img>`` at ``/review/images?src=URL`` (``desk_html``) and their CSP
allows images from the desk's own origin only. That route needs a review session, fetches
through the project's ``Fetcher`` (the SSRF guard: no private, loopback or link-local
address unless ``[fetch] allow_private_networks``), at most ``MAX_IMAGE_BYTES``, and sends
the bytes on only if they are a raster image of an allowed type, by header and by content.
An edit made in the page (the block editor sends the block's HTML as shown) gets its
images' upstream addresses back (``upstream_html``) before it is saved.

Public article pages are the republished article and keep their images where the source
put them, without a Referer (see ``public.ARTICLE_POLICY``).
"""

from __future__ import annotations

import dataclasses
import threading
from urllib.parse import parse_qs, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from aggregator.config import Settings
from aggregator.errors import (
    BlockedURLError,
    FetchError,
    ForbiddenError,
    NotAnImageError,
    NotAuthenticatedError,
    RequestError,
)
from aggregator.extraction.extract import sanitize
from aggregator.polling.fetch import Fetcher
from aggregator.untrusted import safe_http_url
from aggregator.web.auth import Auth
from aggregator.web.doors import session_reviewer

IMAGE_ROUTE = "/review/images"
MAX_IMAGE_BYTES = 5 * 1024 * 1024
IMAGE_MAX_AGE = 24 * 3600
ACCEPT = "image/avif,image/webp,image/png,image/jpeg,image/gif;q=0.9"
# SVG is left out on purpose: it is a document that can hold script and links.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/avif")
IMAGE_HEADERS = {
    "Cache-Control": f"private, max-age={IMAGE_MAX_AGE}",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Content-Disposition": "inline",
    "Referrer-Policy": "no-referrer",
}


def sniff(body: bytes) -> str | None:
    """The image type the bytes themselves say, among ``IMAGE_TYPES``."""
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if body.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if body.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if body[:4] == b"RIFF" and body[8:12] == b"WEBP":
        return "image/webp"
    if body[4:12] in (b"ftypavif", b"ftypavis"):
        return "image/avif"
    return None


def route_for(src: str) -> str | None:
    """Where the desk shows the image at ``src`` (None: an image it will not show)."""
    url = safe_http_url(src)
    return f"{IMAGE_ROUTE}?src={quote(url, safe='')}" if url else None


def desk_html(html: str) -> str:
    """Sanitized HTML for a desk page, every image through the desk's image route."""
    return sanitize(html, image_src=route_for)


def upstream_of(src: str) -> str | None:
    """The upstream address behind a desk image address; any other src as it is."""
    parts = urlsplit(src.strip())
    if parts.path != IMAGE_ROUTE:
        return src
    values = parse_qs(parts.query).get("src")
    return safe_http_url(values[0]) if values else None


def upstream_html(html: str) -> str:
    """An editor's HTML with the desk's image addresses turned back into upstream ones."""
    if IMAGE_ROUTE not in html:
        return html
    return sanitize(html, image_src=upstream_of)


class ImageProxy:
    """``GET /review/images?src=URL`` for a logged-in reviewer."""

    def __init__(self, settings: Settings, auth: Auth) -> None:
        self.auth = auth
        self._settings = dataclasses.replace(settings.fetch, max_body_bytes=MAX_IMAGE_BYTES)
        self._fetcher: Fetcher | None = None
        self._lock = threading.Lock()

    def fetcher(self) -> Fetcher:
        with self._lock:
            if self._fetcher is None:
                self._fetcher = Fetcher(self._settings)
            return self._fetcher

    def close(self) -> None:
        with self._lock:
            if self._fetcher is not None:
                self._fetcher.close()
                self._fetcher = None

    async def image(self, request: Request) -> Response:
        if session_reviewer(self.auth, request) is None:
            raise NotAuthenticatedError("the desk's images are for logged-in reviewers")
        raw = request.query_params.get("src", "")
        url = safe_http_url(raw)
        if url is None:
            raise RequestError(f"'src' must be an http or https URL, got {raw[:200]!r}")
        try:
            result = await run_in_threadpool(self.fetcher().get, url, accept=ACCEPT)
        except BlockedURLError as exc:
            raise ForbiddenError(f"this image is not fetched: {exc}") from None
        except FetchError as exc:
            raise FetchError(f"the image at {url} could not be fetched: {exc}") from None
        declared = result.headers.get("content-type", "").split(";")[0].strip().lower()
        kind = sniff(result.body)
        if declared not in IMAGE_TYPES or kind != declared:
            said = declared or "no Content-Type"
            raise NotAnImageError(
                f"{url} is not an image the desk shows ({said}, content "
                f"{kind or 'not a PNG, JPEG, GIF, WebP or AVIF image'}); "
                f"allowed: {', '.join(IMAGE_TYPES)}",
            )
        return Response(result.body, media_type=kind, headers=IMAGE_HEADERS)
