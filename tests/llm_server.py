"""A local OpenAI-compatible chat-completions server that translates by a fake dictionary.

``LLMServer`` speaks the part of the OpenAI API the LLM engine uses, over real HTTP on
127.0.0.1, so the official ``openai`` client stays in the path:

- ``POST /v1/chat/completions``, non-streaming only (``stream: true`` is refused with 400);
- ``GET /v1/models``, listing the one model it serves (any model name is accepted).

The wire format is the engine's (aggregator/translation/llm.py): a user message holding a JSON
object ``{"units": [{"id": …, "text": …}], …}`` is answered by ``{"units": [{"id": …,
"text": …}]}``, each text translated by tests/servers.py's ``dictionary_translate`` (French
words out, placeholders such as ``[[1]]…[[/1]]``, names and numbers kept). A request without
such a message has its last user message translated as plain text. With ``"headline": true``
the answer also holds ``"headline"``: ``HEADLINE_PREFIX`` + the title translated, so an adapted
headline is told apart from the literal one. ``read_units`` and ``write_units`` are the only
two places that know the format (/tmp/brief/llm-wire.md at the time of writing).

Like a real server, an answer longer than the request's ``max_tokens`` (or
``max_completion_tokens``) is cut there with ``finish_reason = "length"``.

Tokens are counted deterministically: a text costs ⌈len(text) / 4⌉ tokens (characters, not
bytes; the rule of thumb for English with OpenAI's tokenizers). ``prompt_tokens`` is the sum
over the request's messages of their content's tokens; ``completion_tokens`` those of the
answer's content.

Misbehaviours are queued and consumed one per chat request, in order::

    server.misbehave("drop_id", "chatter")  # the next request drops an id, the one after chats

Each name is one of ``MISBEHAVIOURS``; see ``Misbehaviour``. Every chat request is recorded
(``requests``: its parsed JSON body and headers, the Authorization value left out).

Standard library only, like tests/servers.py.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args
from urllib.parse import urlsplit

if __package__:  # imported as tests.llm_server, by a benchmark run from the root
    from tests.servers import LocalServer, _QuietHandler, dictionary_translate
else:  # by pytest, beside the other test modules
    from servers import LocalServer, _QuietHandler, dictionary_translate

Misbehaviour = Literal[
    "drop_id",  # the last unit is missing from the answer
    "merge_units",  # the first two units come back as one (the first id, both texts)
    "chatter",  # "Voici la traduction :" before the JSON
    "english",  # every unit's text comes back as the source
    "truncate",  # the content is cut in the middle, finish_reason = "length"
    "lose_placeholders",  # every [[n]] / [[/n]] marker is removed from the texts
    "rate_limit",  # 429 with retry-after and x-ratelimit-reset-requests / -tokens
    "hang",  # no answer until the server closes (past any client deadline)
    "invalid_json",  # the JSON answer is broken (a trailing comma, the last brace missing)
]
MISBEHAVIOURS: tuple[Misbehaviour, ...] = get_args(Misbehaviour)
CHATTER = "Voici la traduction :\n\n"
# What makes the proposed headline an adaptation rather than the literal title, visibly.
HEADLINE_PREFIX = "À la une : "
DEFAULT_MODEL = "fake-translator"
_PLACEHOLDER_MARK = re.compile(r"\[\[\s*/?\s*\d+\s*\]\]")


def tokens(text: str) -> int:
    """The deterministic token count of ``text``: ⌈characters / 4⌉."""
    return math.ceil(len(text) / 4)


def prompt_tokens(messages: list[Any]) -> int:
    """A request's ``usage.prompt_tokens``: the tokens of its messages' contents."""
    return sum(tokens(_text_of(m.get("content"))) for m in messages if isinstance(m, dict))


# --------------------------------------------------------------------------------------------
# The wire format (aggregator/translation/llm.py): the only two functions that know it.


def read_units(messages: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The request object and its units, from the last user message holding ``{"units": …}``.

    Raises LookupError when no user message holds one.
    """
    for message in reversed(messages):
        if message.get("role") != "user":
            continue
        payload = _json_object_in(_text_of(message.get("content")))
        if isinstance(payload, dict) and isinstance(payload.get("units"), list):
            units = [unit for unit in payload["units"] if isinstance(unit, dict)]
            return payload, units
    raise LookupError("no user message holds a JSON object with units")


def write_units(units: list[dict[str, Any]], headline: str | None = None) -> str:
    """The answer's content: ``{"units": [{"id": …, "text": …}]}``, and the headline if any."""
    answer: dict[str, Any] = {"units": units}
    if headline is not None:
        answer["headline"] = headline
    return json.dumps(answer, ensure_ascii=False)


def _json_object_in(content: str) -> Any:
    """The JSON object a message holds, alone or among instructions (first '{' to last '}')."""
    start, end = content.find("{"), content.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        return json.loads(content[start : end + 1])
    except ValueError:
        return None


def _text_of(content: Any) -> str:
    """A message's content as text: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


# --------------------------------------------------------------------------------------------
# The server


@dataclass(frozen=True)
class ChatRequest:
    """One request received on /v1/chat/completions."""

    body: Any
    """The parsed JSON body (None when it was not JSON)."""
    headers: dict[str, str]
    """Header names lower-cased; the Authorization value is never kept."""
    authorized: bool
    """Whether an Authorization header was sent."""
    misbehaviour: Misbehaviour | None
    """What the server did wrong on purpose in its answer, if anything."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages") if isinstance(self.body, dict) else None
        return messages if isinstance(messages, list) else []

    @property
    def model(self) -> str | None:
        model = self.body.get("model") if isinstance(self.body, dict) else None
        return model if isinstance(model, str) else None

    @property
    def units(self) -> list[dict[str, Any]]:
        """The units the request asked to translate ([] when it held none)."""
        try:
            return read_units(self.messages)[1]
        except LookupError:
            return []

    @property
    def prompt_tokens(self) -> int:
        return prompt_tokens(self.messages)


class _ChatHandler(_QuietHandler):
    llm: ClassVar[LLMServer]

    def do_GET(self) -> None:
        if urlsplit(self.path).path.rstrip("/") == "/v1/models":
            model = {"id": self.llm.model, "object": "model", "created": 0, "owned_by": "tests"}
            self.send_json(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"Unknown path {self.path}", "invalid_request_error")

    def do_POST(self) -> None:
        raw = self.read_body()
        if urlsplit(self.path).path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"Unknown path {self.path}", "invalid_request_error")
            return
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        misbehaviour = self.llm._record(body, dict(self.headers.items()))
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            self._error(400, "The body must be a JSON object with messages", "invalid_body")
            return
        if body.get("stream"):
            self._error(400, "This server does not stream; send stream=false", "stream")
            return
        if misbehaviour == "hang":
            self.closing.wait()
            self.close_connection = True
            return
        if misbehaviour == "rate_limit":
            self._rate_limited()
            return
        content, finish_reason = _answer(body, misbehaviour, self.llm.fluent)
        self.send_json(200, self.llm._completion(body, content, finish_reason))

    def _rate_limited(self) -> None:
        retry_after = self.llm.retry_after
        headers = {
            "retry-after": f"{retry_after:g}",
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": f"{retry_after:g}s",
            "x-ratelimit-limit-tokens": "100000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": f"{retry_after:g}s",
        }
        message = f"Rate limit reached for requests. Please try again in {retry_after:g}s."
        self._error(429, message, "requests", code="rate_limit_exceeded", headers=headers)

    def _error(
        self,
        status: int,
        message: str,
        kind: str,
        *,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        error = {"message": message, "type": kind, "param": None, "code": code}
        self.send_json(status, {"error": error}, headers)


def _answer(
    body: dict[str, Any], misbehaviour: Misbehaviour | None, fluent: bool = False
) -> tuple[str, str]:
    """The assistant's content and finish_reason for a request."""
    try:
        payload, units = read_units(body["messages"])
    except LookupError:
        last_user = [m for m in body["messages"] if isinstance(m, dict) and m.get("role") == "user"]
        text = _text_of(last_user[-1].get("content")) if last_user else ""
        return _finish(_translate_unit(text, misbehaviour, fluent), body, misbehaviour)
    answered = [
        {
            "id": unit.get("id"),
            "text": _translate_unit(str(unit.get("text", "")), misbehaviour, fluent),
        }
        for unit in units
    ]
    if misbehaviour == "drop_id":
        answered = answered[:-1]
    if misbehaviour == "merge_units" and len(answered) >= 2:
        first, second = answered[0], answered[1]
        answered[0:2] = [{"id": first["id"], "text": f"{first['text']} {second['text']}"}]
    headline = None
    if payload.get("headline"):
        title = str(payload.get("title", ""))
        headline = HEADLINE_PREFIX + _translate_unit(title, misbehaviour, fluent)
    content = write_units(answered, headline)
    if misbehaviour == "invalid_json":
        content = content.removesuffix("}") + ","
    return _finish(content, body, misbehaviour)


# What a fluent model writes for the words the fake dictionary does not know.
_FRENCH_FILLER = ("le", "texte", "de", "la", "suite", "et", "des", "mots", "pour", "les", "gens")


def _fluent_word(word: str) -> str:
    """A word missing from the dictionary, as a model that translates everything renders
    it: a common French word (chosen by the word, so the same each time), capitalised as
    the word was. Names go too: this model is fluent, not careful."""
    french = _FRENCH_FILLER[sum(map(ord, word)) % len(_FRENCH_FILLER)]
    return french.capitalize() if word[:1].isupper() else french


def _translate_unit(text: str, misbehaviour: Misbehaviour | None, fluent: bool = False) -> str:
    if misbehaviour == "english":
        return text
    translated = dictionary_translate(text, _fluent_word) if fluent else dictionary_translate(text)
    if misbehaviour == "lose_placeholders":
        return _PLACEHOLDER_MARK.sub("", translated)
    return translated


def _finish(
    content: str, body: dict[str, Any], misbehaviour: Misbehaviour | None
) -> tuple[str, str]:
    if misbehaviour == "chatter":
        content = CHATTER + content
    if misbehaviour == "truncate":
        return content[: len(content) // 2], "length"
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(max_tokens, int) and tokens(content) > max_tokens:
        return content[: 4 * max_tokens], "length"  # as a real server does
    return content, "stop"


class LLMServer(LocalServer):
    """An OpenAI-compatible chat-completions API with a fake dictionary translation.

    Point the ``openai`` client at it with ``OpenAI(base_url=server.base_url, api_key="test")``
    (``base_url`` ends in ``/v1``). ``retry_after`` (seconds, settable) is what a
    ``rate_limit`` answer asks the client to wait.
    """

    def __init__(
        self, *, model: str = DEFAULT_MODEL, retry_after: float = 1.0, fluent: bool = False
    ) -> None:
        self.model = model
        self.retry_after = retry_after
        # Fluent: every word the dictionary lacks becomes French too (``_fluent_word``), as
        # a model that does its job; without, such words stay English and are asked again.
        self.fluent = fluent
        self._lock = threading.Lock()
        self._queued: deque[Misbehaviour] = deque()
        self._requests: list[ChatRequest] = []
        handler = type("ChatHandler", (_ChatHandler,), {"llm": self})
        super().__init__(handler)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``: what the ``openai`` client's ``base_url`` wants."""
        return self.root_url + "/v1"

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``, without /v1."""
        return super().base_url

    def url(self, path: str = "/") -> str:
        if path and not path.startswith("/"):
            path = "/" + path
        return self.root_url + path

    def misbehave(self, *misbehaviours: Misbehaviour) -> None:
        """Queue misbehaviours, one per coming chat request, in order."""
        unknown = [name for name in misbehaviours if name not in MISBEHAVIOURS]
        if unknown:
            raise ValueError(f"unknown misbehaviour {unknown}; known: {MISBEHAVIOURS}")
        with self._lock:
            self._queued.extend(misbehaviours)

    @property
    def pending_misbehaviours(self) -> list[Misbehaviour]:
        """Those queued and not yet consumed by a request."""
        with self._lock:
            return list(self._queued)

    @property
    def requests(self) -> list[ChatRequest]:
        """A snapshot of every chat request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def prompt_tokens(self) -> int:
        """Tokens sent so far, over every chat request (the ``usage`` rule)."""
        return sum(request.prompt_tokens for request in self.requests)

    def _record(self, body: Any, headers: dict[str, str]) -> Misbehaviour | None:
        lowered = {name.lower(): value for name, value in headers.items()}
        authorized = lowered.pop("authorization", None) is not None
        with self._lock:
            misbehaviour = self._queued.popleft() if self._queued else None
            self._requests.append(ChatRequest(body, lowered, authorized, misbehaviour))
        return misbehaviour

    def _completion(self, body: dict[str, Any], content: str, finish_reason: str) -> Any:
        with self._lock:
            number = len(self._requests)
        prompt = prompt_tokens(body["messages"])
        completion = tokens(content)
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": finish_reason,
            "logprobs": None,
        }
        return {
            "id": f"chatcmpl-{number}",
            "object": "chat.completion",
            "created": 1_700_000_000 + number,
            "model": body.get("model") or self.model,
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }
