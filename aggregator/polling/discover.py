"""Feed discovery: the feeds a web page announces with <link rel="alternate">. Pure."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urljoin

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml")
_MAX_HTML = 512 * 1024  # the <head> is what matters; a page's body can be huge


class _AlternateLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.links: list[tuple[str, str, str]] = []  # (href, type, title)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "") for name, value in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"].strip()
        if tag not in ("link", "a"):
            return
        rels = values.get("rel", "").lower().split()
        kind = values.get("type", "").lower().split(";")[0].strip()
        href = values.get("href", "").strip()
        if "alternate" in rels and kind in FEED_TYPES and href:
            self.links.append((href, kind, values.get("title", "")))


def feed_links(html: bytes | str, page_url: str) -> list[str]:
    """Absolute URLs of the feeds a page links to, in page order, without duplicates."""
    text = html[:_MAX_HTML].decode("utf-8", "replace") if isinstance(html, bytes) else html
    parser = _AlternateLinks()
    parser.feed(text)
    parser.close()
    base = (_joined(page_url, parser.base) if parser.base else None) or page_url
    found: list[str] = []
    for href, _kind, _title in parser.links:
        url = _joined(base, href)
        if url and url.startswith(("http://", "https://")) and url not in found:
            found.append(url)
    return found


def _joined(base: str, href: str) -> str | None:
    """``href`` made absolute; None when urllib cannot read it (``http://[::1``, a bad
    port): a broken link in a page is no link, not a failure of the whole page."""
    try:
        return urljoin(base, href)
    except ValueError:
        return None
