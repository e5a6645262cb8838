"""Polling: from a feed's URL to stored entries.

Owns fetching (HTTP interpretation, the SSRF guard at the socket), parsing feed bytes (in a
child process with a deadline), feed discovery, OPML, the pure scheduling decisions
(``decide``) and the feed stage that ties them together (``refresh``).

May import the base modules (config, errors, models, clock, untrusted), ``store`` and
``pipeline``'s services; never ``translation``, ``publishing``, ``desk``, ``web``, ``service``
or ``cli``.
"""
