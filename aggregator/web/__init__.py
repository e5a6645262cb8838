"""The web: the route table (``app``), public feeds and pages, the review pages, the JSON API,
authentication, metrics and the review desk's image proxy.

The only package that knows HTTP frameworks (Starlette, uvicorn). May import every package
below it (store, polling, extraction, translation, publishing, desk); never ``service`` or
``cli``.
"""
