"""Rules for text and URLs that came from outside, applied wherever they leave the system.

Pure functions of strings, with no imports from the project, so that extraction, the desk,
publishing and the web layer can all use the same rule.

- ``safe_http_url``: only an http(s) URL with a host goes into a feed, a page or a link.
  Anything else (``javascript:``, ``data:``, ``vbscript:``, a scheme hidden behind spaces,
  tabs or newlines, an entity that was never decoded) is *left out*, not rewritten: in a
  feed an absent link is valid, a link to ``#`` is not.
- ``plain_text``: text loses the characters that let it pass for other text or break
  what carries it: NUL and the other C0/C1 controls (tab, newline and carriage return
  stay), and the bidirectional embedding, override and isolate controls (U+202A–U+202E,
  U+2066–U+2069), with which a title can show "gpj.exe" as "exe.jpg". The left-to-right
  and right-to-left *marks* (U+200E, U+200F, U+061C) stay: they change the direction of
  no other character and real Arabic or Hebrew text needs them.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

WEB_SCHEMES = frozenset({"http", "https"})
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_CONTROL_RANGES = (
    (0x00, 0x08), (0x0B, 0x0C), (0x0E, 0x1F), (0x7F, 0x9F), (0x202A, 0x202E), (0x2066, 0x2069)
)  # fmt: skip
# The same rule for str.translate, which markupsafe.Markup keeps as markup.
CONTROL_TABLE: dict[int, None] = {
    code: None for low, high in _CONTROL_RANGES for code in range(low, high + 1)
}
# Browsers (WHATWG URL) drop these anywhere in a URL and C0 controls or spaces at its ends:
# "java\tscript:" and " javascript:" are javascript: to them, so they are to this check.
_URL_INVISIBLE = re.compile("[\t\n\r]")
_URL_EDGES = "".join(chr(c) for c in range(0x21))


def same_site(url: str | None, other: str | None) -> bool:
    """Are both URLs on one site? Hosts match when one is the other or a subdomain of it
    (www., blog.); a URL without a readable host is on no site."""
    host, other_host = _site_host(url), _site_host(other)
    if not host or not other_host:
        return False
    return host == other_host or host.endswith(f".{other_host}") or other_host.endswith(f".{host}")


def _site_host(url: str | None) -> str:
    try:
        return (urlsplit(url or "").hostname or "").lower().removeprefix("www.")
    except ValueError:
        return ""


def plain_text(text: str) -> str:
    """``text`` without control, embedding, override or isolate characters."""
    return _CONTROLS.sub("", text)


def safe_http_url(url: str | None) -> str | None:
    """The URL as a browser would read it, if that is http(s) with a host; else None."""
    if not url:
        return None
    candidate = _URL_INVISIBLE.sub("", url).strip(_URL_EDGES)
    if _CONTROLS.search(candidate):
        return None  # a control or bidi character has no business in a URL
    try:
        parts = urlsplit(candidate)
        host = parts.hostname
    except ValueError:  # an unbalanced "[" in the host, a port that is not a number
        return None
    if parts.scheme.lower() not in WEB_SCHEMES or not host:
        return None
    return candidate


# Ids are Integer columns: 32 bits on PostgreSQL. A larger number in a URL names nothing,
# and must say so (404) rather than overflow the database driver.
MAX_ROW_ID = 2**31 - 1


def is_row_id(value: int) -> bool:
    """Could ``value``, taken from a URL, be the id of a row?"""
    return 0 < value <= MAX_ROW_ID
