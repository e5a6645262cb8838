"""HTML fragment helpers that extraction and translation both use (lxml elements in, text out)."""

from __future__ import annotations

from html import escape

from lxml import etree


def inner_html(element: etree._Element) -> str:
    """The element's content as HTML, without the element itself."""
    children = "".join(etree.tostring(c, encoding="unicode", method="html") for c in element)
    return escape(element.text or "", quote=False) + children
