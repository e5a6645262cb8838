"""Extraction: an article page's HTML to clean, sanitized article HTML, and its language.

Owns the extractor (trafilatura, never fetching), newsletter boilerplate removal, paid-post
detection and language detection. Pure functions of text.

May import the base modules only (errors, untrusted); never the store, translation (which
builds on extraction: its HTML helpers live here, in ``fragment``), the web or the service.
"""
