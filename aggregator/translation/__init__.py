"""Translation: one article's HTML into the target language, complete or not at all.

Owns segmentation into units with placeholders, the engines (MT and LLM) and their
deadlines, the engine chain (circuit breakers, budgets, fallback), the glossary, French
typography and the use of the translation memory.

May import the base modules, ``extraction`` (sanitizing, language) and ``polling.fetch``'s
HTTP interpretation; the store only through what the caller passes in. Never ``publishing``,
``desk``, ``web``, ``service`` or ``cli``.
"""
