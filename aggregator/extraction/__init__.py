"""Extraction: an article page's HTML to clean, sanitized article HTML, and its language.

Owns the extractor (trafilatura, never fetching), newsletter boilerplate removal, paid-post
detection and language detection. Pure functions of text.

May import the base modules only (errors, untrusted) and ``translation.segment``'s HTML
helpers; never the store, the web or the service.
"""
