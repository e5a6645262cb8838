"""nginx configured as docs/operations.md says: the snippet between its markers, pointed at
this machine's ports and folders (tests/web/test_nginx.py and bench/serve.py run it)."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"
# What the documented snippet names, replaced by where this test runs things.
DOCUMENTED_LISTEN = "listen 127.0.0.1:80;"
DOCUMENTED_ROOT = "root /var/lib/aggregator/publication/current;"
DOCUMENTED_UPSTREAM = "server 127.0.0.1:8080;"


def documented_nginx_server(publication: Path, port: int, upstream_port: int) -> str:
    """The nginx snippet of docs/operations.md, pointed at this machine's ports and folder."""
    text = OPERATIONS.read_text(encoding="utf-8")
    found = re.search(
        r"<!-- nginx-snippet -->\n```nginx\n(.*?)```\n<!-- /nginx-snippet -->", text, re.S
    )
    assert found, f"{OPERATIONS} has no nginx snippet between its markers"
    snippet = found.group(1)
    for documented, actual in (
        (DOCUMENTED_LISTEN, f"listen 127.0.0.1:{port};"),
        (DOCUMENTED_ROOT, f"root {publication}/current;"),
        (DOCUMENTED_UPSTREAM, f"server 127.0.0.1:{upstream_port};"),
    ):
        assert snippet.count(documented) == 1, f"the snippet must contain {documented!r} once"
        snippet = snippet.replace(documented, actual)
    return snippet


def nginx_conf(folder: Path, server: str) -> str:
    """A whole nginx.conf around ``server``: one worker, everything under ``folder``."""
    temp = "\n".join(
        f"    {kind}_temp_path {folder}/tmp-{kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx's workers would otherwise run as nobody, who cannot enter pytest's
    # private temporary folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\ndaemon off;\npid {folder}/nginx.pid;\n"
        f"error_log {folder}/nginx-error.log warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{\n    access_log off;\n{temp}\n    keepalive_requests 1000000;\n"
        f"{server}\n}}\n"
    )
