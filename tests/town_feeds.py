"""Generated RSS of plain English articles, each whole in ``content:encoded``, in words the
local LibreTranslate server's dictionaries know (``servers.ENGLISH_TO_FRENCH`` and
``ENGLISH_TO_SPANISH``): for tests of what is done with a feed's articles, not of parsing."""

from __future__ import annotations

from collections.abc import Callable


def town_article(number: int) -> str:
    """A few paragraphs of plain English, different in each issue."""
    subjects = ("The harbour", "Our town", "The old bridge", "The market", "The school")
    return "".join(
        f"<p>{subject} changed a lot in issue {number}: people walked there every morning, "
        f"talked about the weather, the boats and the price of bread, and went home "
        f"happy before the rain came back in the evening for paragraph {i}.</p>"
        for i, subject in enumerate(subjects * 2)
    )


def town_feed(
    base_url: str,
    count: int,
    *,
    channel: str = "Weekly",
    title: Callable[[int], str] = lambda n: f"Issue {n}",
    author: str = "",
) -> str:
    """RSS 2.0 of ``count`` issues, linked under ``base_url`` (the upstream server)."""
    creator = f"<dc:creator>{author}</dc:creator>" if author else ""

    def item(n: int) -> str:
        body = f"<content:encoded><![CDATA[{town_article(n)}]]></content:encoded>"
        link = f"<link>{base_url}/issue-{n}</link><guid>issue-{n}</guid>"
        return f"<item><title>{title(n)}</title>{link}{creator}{body}</item>"

    items = "".join(map(item, range(1, count + 1)))
    return (
        '<?xml version="1.0"?><rss version="2.0" '
        'xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<channel><title>{channel}</title><link>{base_url}/</link>"
        f"<description>d</description>{items}</channel></rss>"
    )
