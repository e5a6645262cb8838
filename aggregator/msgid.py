"""``N_``: marks an English msgid where it is defined; it is translated where it is shown.

Apart from ``aggregator.i18n`` (which re-exports it) so that a module that only names its
messages, such as a command's, does not load Babel.
"""


def N_(message: str) -> str:
    """The message itself: Babel's extraction (``-k N_``) finds it in the source."""
    return message
