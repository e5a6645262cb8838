"""The editor's desk: review actions, comparisons, entries and feed health as an editor reads
them, the same whichever door (CLI, review pages, API) the editor comes through.

May import the base modules, ``store``, ``extraction``, ``translation`` and ``publishing``;
never ``web``, ``service`` or ``cli``.
"""
