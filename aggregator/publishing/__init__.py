"""Publishing: approved drafts to the bytes readers fetch.

Owns Atom, RSS 2.0 and JSON Feed rendering with the credit of the original, the
conditional-request rules of a rendered representation, and WebSub pings.

May import the base modules, ``extraction``'s sanitizer and ``store``; never ``desk``,
``web``, ``service`` or ``cli``.
"""
