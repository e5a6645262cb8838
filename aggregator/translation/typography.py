"""French typography on machine output, as a French editor sets it. Pure: text in, text out.

Engines hand back English punctuation habits: no space before ``; : ! ?``, "straight" or
“curly” quotes, ``'`` for the apostrophe, ``50%`` and ``1 000`` with breakable spaces. The
rules of the Imprimerie nationale, as French publications apply them:

- a narrow no-break space (U+202F) before ``; ! ?`` and before ``:`` that ends a clause;
- « guillemets » with narrow no-break spaces inside, for English double quotes;
- the typographic apostrophe ’ between letters;
- a narrow no-break space between groups of thousands and before ``%``, and a no-break
  space (U+00A0) between a number and its unit or currency.

Nothing changes inside ``code``, ``pre``, ``kbd``, ``samp`` or ``script``/``style``, in
attributes, nor in URLs and e-mail addresses written in the text. Only machine output goes
through here: an editor's own text is theirs.
"""

from __future__ import annotations

import html
import re

NARROW_NBSP = "\u202f"
NBSP = "\u00a0"

_TAG = re.compile(r"(<[^>]*>)")
_TAG_NAME = re.compile(r"<\s*(/?)\s*([a-zA-Z][\w-]*)")
_VERBATIM = frozenset({"code", "pre", "kbd", "samp", "script", "style", "tt", "var"})
_VOID = frozenset({"br", "img", "hr", "input", "meta", "link", "wbr", "source", "col"})
# Written out so that an address in running text keeps its ':' and its quotes.
_VERBATIM_WORDS = re.compile(
    r"(?:\b(?:https?|ftp|mailto):[^\s<>«»\"“”]+|\bwww\.[^\s<>«»\"“”]+|[\w.+-]+@[\w-]+\.[\w.-]+)"
)
_SPACES = "[ \u00a0\u202f\t]*"
_BEFORE_DOUBLE = re.compile(rf"(?<=[^\s;:!?«]){_SPACES}([;!?])")
# A colon that ends a clause (followed by a space or the end), not 12:30 or a ratio.
_BEFORE_COLON = re.compile(rf"(?<=[^\s;:!?«\d]){_SPACES}:(?=\s|$)|(?<=\d){_SPACES}:(?=\s+\D|$)")
_APOSTROPHE = re.compile(r"(?<=\w)'(?=\w)")
_OPEN_GUILLEMET = re.compile(rf"«{_SPACES}")
_CLOSE_GUILLEMET = re.compile(rf"{_SPACES}»")
_THOUSANDS = re.compile(r"(?<=\d)[ \u00a0](?=\d{3}(?!\d))")
_PERCENT = re.compile(rf"(?<=\d){_SPACES}%")
_UNIT = re.compile(
    r"(?<=\d) (?=(?:€|\$|£|¥|°C|°F|km/h|km|cm|mm|m²|m|kg|mg|g|Go|Mo|Ko|To|Gb|Mb|GB|MB|KB|TB|"
    r"kWh|kW|MW|GW|W|GHz|MHz|Hz|ms|min|h|s|l|L|ans?|milliards?|millions?|dollars?|euros?)"
    r"(?![\w]))"
)
_CURRENCY = re.compile(r"(?<=\w) (?=[€$£¥](?!\w))")
_OPENING_CONTEXT = frozenset(" \t\n\u00a0\u202f([{—–-/")


def typeset(text: str, language: str, *, markup: bool = False) -> str:
    """Machine output set in the typography of ``language`` (French; others unchanged)."""
    if language.split("-")[0].lower() != "fr":
        return text
    return french_html(text) if markup else french_text(text)


def french_text(text: str) -> str:
    """A plain text (a title) set in French typography."""
    quotes = _QuoteState()
    return _set(text, quotes)


def french_html(fragment: str) -> str:
    """An HTML fragment whose text nodes are set in French typography; markup untouched."""
    quotes = _QuoteState()
    verbatim_depth = 0
    out: list[str] = []
    for part in _TAG.split(fragment):
        if not part:
            continue
        if part.startswith("<"):
            verbatim_depth += _verbatim_step(part)
            out.append(part)
            if not part.startswith(("<!", "<?")) and _is_block_boundary(part):
                quotes.last, quotes.open = " ", False
            continue
        if verbatim_depth > 0:
            quotes.last = part[-1]
            out.append(part)
            continue
        out.append(html.escape(_set(html.unescape(part), quotes), quote=False))
    return "".join(out)


class _QuoteState:
    """What came before the current text, across text nodes: decides whether a straight
    quote opens or closes (``"<em>word</em>"`` splits one quotation over three nodes)."""

    def __init__(self) -> None:
        self.last = " "
        self.open = False


def _verbatim_step(tag: str) -> int:
    match = _TAG_NAME.match(tag)
    if not match or match.group(2).lower() not in _VERBATIM or tag.endswith("/>"):
        return 0
    return -1 if match.group(1) else 1


def _is_block_boundary(tag: str) -> bool:
    match = _TAG_NAME.match(tag)
    if not match:
        return False
    name = match.group(2).lower()
    return name not in _VOID and name in {
        "p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "td", "th",
        "figcaption", "div", "section", "article", "dt", "dd",
    }  # fmt: skip


def _set(text: str, quotes: _QuoteState) -> str:
    pieces: list[str] = []
    position = 0
    for match in _VERBATIM_WORDS.finditer(text):
        pieces.append(_set_words(text[position : match.start()], quotes))
        pieces.append(match.group())
        quotes.last = match.group()[-1]
        position = match.end()
    pieces.append(_set_words(text[position:], quotes))
    return "".join(pieces)


def _set_words(text: str, quotes: _QuoteState) -> str:
    if not text:
        return text
    # "<em>Vraiment</em>?": the mark opens this text node but follows the previous one's word.
    ends_clause = text[0] in ";!?" or (text[0] == ":" and text[1:2] in ("", " ", "\n"))
    glued = ends_clause and not quotes.last.isspace() and quotes.last not in ";:!?«"
    after_word = quotes.last.isalnum()
    text = _guillemets(text, quotes)
    if after_word and re.match(r"'\w", text):  # "<code>git</code>'s": the word went before
        text = "’" + text[1:]
    if glued:
        text = NARROW_NBSP + text
    text = _APOSTROPHE.sub("’", text)
    text = _OPEN_GUILLEMET.sub("«" + NARROW_NBSP, text)
    text = _CLOSE_GUILLEMET.sub(NARROW_NBSP + "»", text)
    text = _BEFORE_DOUBLE.sub(NARROW_NBSP + r"\1", text)
    text = _BEFORE_COLON.sub(NARROW_NBSP + ":", text)
    text = _THOUSANDS.sub(NARROW_NBSP, text)
    text = _PERCENT.sub(NARROW_NBSP + "%", text)
    return _CURRENCY.sub(NBSP, _UNIT.sub(NBSP, text))


def _guillemets(text: str, quotes: _QuoteState) -> str:
    out: list[str] = []
    for character in text:
        if character == "“" or (character == '"' and _opens(quotes)):
            out.append("«")
            quotes.open = True
        elif character == "”" or (character == '"' and quotes.open):
            out.append("»")
            quotes.open = False
        else:
            out.append(character)
        quotes.last = out[-1]
    return "".join(out)


def _opens(quotes: _QuoteState) -> bool:
    # A quote inside an open quotation closes it unless it starts a word ("a "b" c").
    return not quotes.open or (quotes.last in _OPENING_CONTEXT and quotes.last != " ")
