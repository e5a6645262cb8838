"""Requests for engines that take lines of text: filled to each engine's limits.

Characters, and URL bytes for engines that send the text in the URL; a line that does not
fit is cut at a sentence end, so that the cost stays close to ceil(characters / limit).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from aggregator.errors import TranslateError
from aggregator.translation.engines import Engine
from aggregator.translation.segment import PLACEHOLDER

_URL_SAFE = re.compile(r"[A-Za-z0-9_.~ -]+")  # one character each in a query string


def url_length(text: str) -> int:
    """len(quote_plus(text)), without building it: 3 characters per byte to escape."""
    return len(text.encode("utf-8")) + 2 * len(_URL_SAFE.sub("", text).encode("utf-8"))


def _sizes(text: str, url_limit: int) -> tuple[int, int]:
    return len(text), (url_length(text) if url_limit else 0)


def pack(lines: Sequence[str], engine: Engine) -> list[list[tuple[int, str]]]:
    """Requests for these lines, one line per line of a request: (line index, text) each.

    Requests are filled to the engine's limits (characters, and URL bytes for engines that
    send the text in the URL). Where the next line does not fit, it is cut at a sentence end
    so that the head fills the request and the rest opens the next one; a piece is never
    shorter than MIN_PIECE of a request, so no sentence is cut off from its paragraph for
    a few characters. The cost is then close to ceil(characters / limit).
    """
    max_chars, url_limit = engine.max_chars, getattr(engine, "max_url_bytes", 0)
    requests: list[list[tuple[int, str]]] = []
    current: list[tuple[int, str]] = []
    used = [0, 0]

    def fits(text: str) -> bool:
        chars, url = _sizes(text, url_limit)
        separator = 1 if current else 0
        return used[0] + chars + separator <= max_chars and (
            not url_limit or used[1] + url + 3 * separator <= url_limit
        )

    def add(index: int, text: str) -> None:
        chars, url = _sizes(text, url_limit)
        separator = 1 if current else 0
        used[0] += chars + separator
        used[1] += url + 3 * separator
        current.append((index, text))

    def close() -> None:
        if current:
            requests.append(list(current))
            current.clear()
            used[0] = used[1] = 0

    for index, line in enumerate(lines):
        rest = line
        while rest:
            if fits(rest):
                add(index, rest)
                break
            minimum = int(max_chars * MIN_PIECE) if current else 1
            head, tail = _cut(rest, fits, minimum)
            if head:
                add(index, head)
                rest = tail
            elif not current:
                raise TranslateError(f"{engine.name}: its request limits leave no room for text")
            close()
    close()
    return requests


MIN_PIECE = 0.05


def _cut(text: str, fits: Callable[[str], bool], minimum: int) -> tuple[str, str]:
    """The longest head of ``text`` that fits, cut at a sentence end outside inline markup,
    else any sentence end, else a space, else anywhere; ("", text) if none is long enough."""
    depth_zero, anywhere, spaces = _cut_points(text)
    for candidates in (depth_zero, depth_zero + anywhere, spaces):
        best = _longest_fitting(text, sorted(candidates), fits, minimum)
        if best is not None:
            return text[:best].rstrip(), text[best:].lstrip()
    low, high = 0, len(text)  # one "word" longer than a request: cut it where it must be
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if fits(text[:middle]) else (low, middle - 1)
    if low < minimum:
        return "", text
    return text[:low], text[low:]


def _cut_points(text: str) -> tuple[list[int], list[int], list[int]]:
    """Spaces after a sentence end outside any inline markup, inside some, and all spaces."""
    outside: list[int] = []
    inside: list[int] = []
    spaces: list[int] = []
    closing = {n for slash, n in PLACEHOLDER.findall(text) if slash}
    depth, position = 0, 0

    def scan(end: int) -> None:
        for j in range(position, end):
            if text[j] == " ":
                spaces.append(j)
                if j and text[j - 1] in ".!?…:;":
                    (outside if depth == 0 else inside).append(j)

    for token in PLACEHOLDER.finditer(text):
        scan(token.start())
        if token.group(1):
            depth = max(0, depth - 1)
        elif token.group(2) in closing:
            depth += 1
        position = token.end()
    scan(len(text))
    return outside, inside, spaces


def _longest_fitting(
    text: str, positions: list[int], fits: Callable[[str], bool], minimum: int
) -> int | None:
    """The largest position whose head fits (heads grow with the position: bisect)."""
    low, high, best = 0, len(positions) - 1, None
    while low <= high:
        middle = (low + high) // 2
        head = text[: positions[middle]].rstrip()
        if fits(head):
            if len(head) >= minimum:
                best = positions[middle]
            low = middle + 1
        else:
            high = middle - 1
    return best
