"""Translation cost: requests and characters sent, beside their lower bounds; CPU beside
trafilatura.

    .venv/bin/python -m bench.translate
    .venv/bin/python -m bench.translate --generated 60     # more generated issues
    .venv/bin/python -m bench.translate --engine llm       # the LLM engine only (or libre)

(from the repository's root: the test servers are imported as the ``tests`` package).

The engine is deep-translator's LibreTranslator against the LibreTranslate API server of the
tests (tests/servers.py) on 127.0.0.1, which counts every request and every character it
receives. The corpus is every English article at hand: the three real article pages of
trafilatura's test cache (extracted with trafilatura), the English entries of the real feeds
(feed content, boilerplate removed and sanitized as the pipeline does), and generated
newsletter issues (a recurring intro and sign-off, sections with links, emphasis, lists,
quotes, images, code; some longer than a request).

Figures, each beside what it is measured against:

- requests per article, beside the lower bound Σ ⌈source characters / limit⌉ (a perfect
  packer that could cut anywhere); goal ≤ 1.1 × the bound;
- characters sent beside the source characters (the visible text to translate, title
  included, code excluded); goal ≤ 1.1 ×; first with no translation memory (placeholders and
  line breaks are the whole overhead), then with it (recurring blocks paid once);
- an update: one paragraph of every article changed, the article translated again with the
  memory: characters sent beside that paragraph's characters; goal ≤ 1.2 ×;
- CPU milliseconds per article in our translation stage outside the network (segmentation,
  language per block, placeholders, batching, restore, checks, sanitizing: the calling
  thread's CPU time; the HTTP call runs in the engine's own thread), beside the CPU time
  trafilatura itself takes to extract the same article from a page.

The LLM engine (``--engine llm``) runs against the OpenAI-compatible server of the tests
(tests/llm_server.py), whose ``usage`` counts ⌈characters / 4⌉ tokens per message, for each
batch limit of ``BATCH_TOKEN_LIMITS`` (the effect of context size). The server is
``fluent``: the words its dictionary lacks come back as French words too, as from a model
that does its job; what a model gets wrong, and what the repairs cost, the tests measure.

- tokens sent per article beside the lower bound: the source tokens plus the instructions
  once per batch, with the fewest batches (⌈source tokens / limit⌉); goal ≤ 1.3 ×;
- requests per article beside that fewest number of batches; goal ≤ 1.1 ×;
- with the memory warm (the same articles again): tokens beside the cold ones; goal ≤ 0.1 ×;
  and one paragraph changed in every article, beside that paragraph and the instructions;
- where the characters go (instructions, units, context around them, JSON) and how many
  units were sent again (repairs);
- RSS-Translator's count on the same articles: one request per non-empty text node of the
  body and one for the title, each with its default instructions.

Articles whose units even the fluent fake leaves in English (all in capitals: it keeps
acronyms) are refused by the engine's checks, as they should be; they are counted apart and
left out of the ratios.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lxml.html
import trafilatura

from tests.llm_server import LLMServer, read_units, tokens
from tests.servers import LibreTranslateServer
from tests.translation_desk import real_article_pages

ROOT = Path(__file__).resolve().parent.parent

from aggregator.config import Duration, EngineSettings, LLMSettings, TranslationSettings  # noqa: E402
from aggregator.errors import TranslateError  # noqa: E402
from aggregator.extraction.boilerplate import remove_boilerplate  # noqa: E402
from aggregator.extraction.extract import extract_article, sanitize, text_of, word_count  # noqa: E402
from aggregator.extraction.language import detect  # noqa: E402
from aggregator.polling.parse import parse_feed  # noqa: E402
from aggregator.store import Store  # noqa: E402
from aggregator.translation.engines import Engine, build_engine  # noqa: E402
from aggregator.translation.segment import parse_fragment, units  # noqa: E402
from aggregator.translation.translate import translate_article  # noqa: E402

REAL = Path("/work/shared/fixtures/real")
if not REAL.exists():
    REAL = ROOT.parent / "shared" / "fixtures" / "real"
PAGES = real_article_pages()
MIN_WORDS = 60
TRAFILATURA_OPTIONS = {
    "output_format": "html",
    "include_comments": False,
    "include_links": True,
    "include_images": True,
    "include_formatting": True,
    "include_tables": True,
}


@dataclass
class Article:
    origin: str
    title: str
    html: str  # sanitized, as stored by the pipeline
    page: bytes | str  # what trafilatura would be given for it


def real_pages() -> list[Article]:
    found = []
    for name, url in PAGES.items():
        page = (REAL / name).read_bytes()
        article = extract_article(page, url)
        found.append(Article(f"page {name}", article.title or name, article.html, page))
    return found


def real_feed_entries() -> list[Article]:
    found = []
    for path in sorted(REAL.iterdir()):
        if path.suffix not in (".xml", ".rss", ".atom"):
            continue
        try:
            feed = parse_feed(path.read_bytes(), "https://example.com/feed", None)
        except Exception:  # broken feeds are part of the fixtures
            continue
        for entry in feed.entries:
            content = entry.content_html or entry.summary_html or ""
            if word_count(content) < MIN_WORDS or detect(text_of(content)) != "en":
                continue
            html = sanitize(remove_boilerplate(content), entry.url or None)
            title = entry.title or ""
            found.append(Article(f"feed {path.name}", title, html, _as_page(title, html)))
    return found


def _as_page(title: str, body: str) -> str:
    return (
        f"<html><head><title>{title}</title></head><body><header><nav><a href='/'>Home</a>"
        f"</nav></header><article><h1>{title}</h1>{body}</article>"
        "<footer><p>© The publisher</p></footer></body></html>"
    )


# ------------------------------------------------------------------- generated newsletters

WORDS = {
    "subject": ["The company", "The board", "The government", "Our team", "The community",
                "The project", "The court", "Every engineer", "The administration", "Readers"],
    "verb": ["said", "decided", "wanted", "published", "released", "argued", "explained",
             "announced", "showed", "found"],
    "object": ["a new version of the software", "the data behind the research",
               "a plan to change the system", "the price of the service",
               "the lawsuit against the state", "a report on the news business",
               "the results of the conference", "a faster parser for the files"],
    "tail": ["last week", "this month", "before the end of the year", "without much oversight",
             "with the support of its users", "after a long public debate"],
}  # fmt: skip
INTRO = (
    "<p><em>Welcome to The Weekly Machine, a letter about technology and media. If a friend "
    'forwarded this to you, </em><a href="https://weekly.example/#/portal/signup">'
    "<em>you can subscribe here</em></a><em>.</em></p>"
)
ABOUT = (
    "<p>The Weekly Machine is written by a small team of engineers and writers who follow the "
    "companies, the courts and the people that decide how technology is used.</p>"
)
SIGN_OFF = (
    "<hr><p><em>Thanks for reading The Weekly Machine! If you enjoyed this issue, please "
    "share it with someone who might like it too.</em></p>"
)


def _sentence(rng: random.Random) -> str:
    parts = [rng.choice(WORDS[k]) for k in ("subject", "verb", "object", "tail")]
    return " ".join(parts) + "."


def _paragraph(rng: random.Random, n: int) -> str:
    sentences = [_sentence(rng) for _ in range(rng.randint(2, 6))]
    if rng.random() < 0.5:
        i = rng.randrange(len(sentences))
        words = sentences[i].split(" ")
        j = rng.randrange(1, len(words) - 1)
        words[j] = f'<a href="https://example.com/{n}/{i}">{words[j]}</a>'
        sentences[i] = " ".join(words)
    if rng.random() < 0.3:
        sentences.append("Run <code>make test</code> to see it for <em>yourself</em>.")
    return "<p>" + " ".join(sentences) + "</p>"


def generated_issues(count: int, seed: int = 4) -> list[Article]:
    rng = random.Random(seed)
    found = []
    for n in range(count):
        parts = [INTRO]
        sections = rng.choice([1, 2, 3, 4, 6, 10, 14])
        for s in range(sections):
            parts.append(f"<h2>{rng.choice(WORDS['object']).capitalize()}</h2>")
            for _ in range(rng.randint(1, 4)):
                parts.append(_paragraph(rng, n * 100 + s))
            roll = rng.random()
            if roll < 0.2:
                items = "".join(f"<li>{_sentence(rng)}</li>" for _ in range(rng.randint(3, 5)))
                parts.append(f"<ul>{items}</ul>")
            elif roll < 0.35:
                parts.append(f"<blockquote>{_sentence(rng)}</blockquote>")
            elif roll < 0.5:
                parts.append(
                    f'<figure><img src="https://example.com/{n}/{s}.png" alt="">'
                    f"<figcaption>{_sentence(rng)}</figcaption></figure>"
                )
            elif roll < 0.6:
                parts.append("<pre>def main():\n    return parse(read())</pre>")
        parts += [ABOUT, SIGN_OFF]
        html = sanitize(remove_boilerplate("".join(parts)), "https://weekly.example/")
        title = f"Issue {n + 1}: {rng.choice(WORDS['object'])}"
        found.append(Article("generated newsletter", title, html, _as_page(title, html)))
    return found


# ------------------------------------------------------------------- measuring


def source_characters(article: Article) -> int:
    """The visible text to translate: title and every unit with words, code excluded."""
    body = sum(len(u.plain) for u in units(parse_fragment(article.html)) if u.has_words)
    return len(article.title) + body


def changed(article: Article, rng: random.Random) -> tuple[Article, int] | None:
    """The article with one paragraph changed (a sentence added), and that paragraph's size."""
    root = lxml.html.fragment_fromstring(article.html, create_parent="div")
    paragraphs = [p for p in root.iter("p") if len(p.text_content()) >= 40]
    if not paragraphs:
        return None
    paragraph = paragraphs[rng.randrange(len(paragraphs))]
    tail = paragraph[-1] if len(paragraph) else None
    addition = " The company said the board will publish the data next week."
    if tail is not None:
        tail.tail = (tail.tail or "") + addition
    else:
        paragraph.text = (paragraph.text or "") + addition
    size = len(" ".join(paragraph.text_content().split()))
    html = "".join(lxml.html.tostring(c, encoding="unicode") for c in root)
    return Article(article.origin, article.title, (root.text or "") + html, article.page), size


# ------------------------------------------------------------------- LLM engine

# RSS-Translator's default content prompt for its OpenAI-compatible engines
# (translator/models/base.py), French filled in: it is sent with every text node.
RSS_TRANSLATOR_PROMPT = (
    "Translate only the text into French, return only the translations, "
    "do not explain the original text."
)
BATCH_TOKEN_LIMITS = (500, 2000, 8000)


def text_nodes(html: str) -> list[str]:
    """Every non-empty text node of the body, as RSS-Translator sends them: one request each."""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    found = []
    for element in root.iter():
        if isinstance(element.tag, str):  # comments and processing instructions hold no text
            found.append(element.text)
        if element is not root:
            found.append(element.tail)
    return [text for text in found if text and text.strip()]


def rss_translator_cost(article: Article) -> tuple[int, int]:
    """(requests, tokens sent) for the title and each text node, instructions every time."""
    pieces = [article.title, *text_nodes(article.html)]
    instructions = tokens(RSS_TRANSLATOR_PROMPT)
    return len(pieces), sum(instructions + tokens(piece) for piece in pieces)


@dataclass
class Spent:
    requests: int = 0
    tokens: int = 0
    reasked: int = 0  # units sent again in the same article: repairs
    # Characters sent, by what they are: instructions, the units' text, the context around
    # them (title, units before and after, examples, glossary), and the JSON around it all.
    instructions: int = 0
    units: int = 0
    context: int = 0
    framing: int = 0

    def add(self, other: Spent) -> None:
        for name, value in vars(other).items():
            setattr(self, name, getattr(self, name) + value)

    def shares(self) -> str:
        parts = {"instructions": self.instructions, "units": self.units,
                 "context": self.context, "JSON": self.framing}  # fmt: skip
        total = sum(parts.values()) or 1
        return ", ".join(f"{name} {100 * size / total:.0f} %" for name, size in parts.items())


def spent_since(server: LLMServer, start: int) -> Spent:
    spent = Spent()
    asked: list[str] = []
    for request in server.requests[start:]:
        spent.requests += 1
        spent.tokens += request.prompt_tokens
        for message in request.messages:
            if message.get("role") == "system":
                spent.instructions += len(message["content"])
        work, units = read_units(request.messages)
        texts = [str(unit.get("text", "")) for unit in units]
        asked += [f"{unit.get('id')}{text}" for unit, text in zip(units, texts, strict=True)]
        around = [work.get("title", ""), *work.get("before", []), *work.get("after", [])]
        around += [text for example in work.get("examples", []) for text in example.values()]
        around += [*work.get("glossary", {}).get("keep", [])]
        around += [t for pair in work.get("glossary", {}).get("force", {}).items() for t in pair]
        spent.units += sum(map(len, texts))
        spent.context += sum(map(len, around))
        user = sum(len(m["content"]) for m in request.messages if m.get("role") == "user")
        spent.framing += user - sum(map(len, texts)) - sum(map(len, around))
    spent.reasked = len(asked) - len(set(asked))
    return spent


@dataclass
class LLMRun:
    limit: int
    articles: list[Article]  # those the fake dictionary turns into French the checks accept
    failed: Spent  # what the others cost before the engine gave up on them
    instructions: int  # tokens of the instructions, sent once per request
    cold: Spent
    bound_requests: int  # Σ ⌈source tokens / limit⌉
    bound_tokens: int  # Σ source tokens + instructions × ⌈source tokens / limit⌉
    worst: float  # the worst article's tokens against its bound
    memory: Spent  # the corpus in one run with the memory (recurring blocks paid once)
    warm: Spent  # the corpus again, the memory warm
    update: Spent  # one paragraph of every article changed, the memory warm
    update_bound: int  # the changed paragraphs' tokens + instructions once per article


def run_llm(corpus: list[Article], limit: int) -> LLMRun:
    with LLMServer(model="bench", fluent=True) as server, tempfile.TemporaryDirectory() as tmp:
        settings = TranslationSettings(
            engine="llm",
            timeout=Duration(30),
            llm=LLMSettings(
                base_url=server.base_url, model="bench", api_key="bench", batch_tokens=limit
            ),
        )
        engine: Engine = build_engine(settings)
        store = Store(f"sqlite:///{tmp}/bench.db")
        store.upgrade()

        def translate(article: Article, memory: Store | None) -> Spent:
            start = len(server.requests)
            try:
                translation = translate_article(
                    article.title, article.html, engine, target_language="fr", memory=memory
                )
            except TranslateError:
                raise Unfinished(spent_since(server, start)) from None
            spent = spent_since(server, start)
            assert translation.prompt_tokens == spent.tokens, (translation, spent)
            return spent

        articles, failed = [], Spent()
        cold, bound_requests, bound_tokens, worst = Spent(), 0, 0, 0.0
        instructions = 0
        for article in corpus:
            try:
                spent = translate(article, None)
            except Unfinished as unfinished:
                failed.add(unfinished.spent)
                continue
            articles.append(article)
            cold.add(spent)
            first = server.requests[-spent.requests] if spent.requests else None
            if first is not None and not instructions:
                instructions = tokens(first.messages[0]["content"])
            source = tokens_of_source(article)
            batches = math.ceil(source / limit)
            bound_requests += batches
            bound_tokens += source + instructions * batches
            worst = max(worst, spent.tokens / (source + instructions * batches))

        memory, warm, update = Spent(), Spent(), Spent()
        for article in articles:
            memory.add(translate(article, store))
        for article in articles:
            warm.add(translate(article, store))
        rng = random.Random(7)
        update_bound = 0
        for article in articles:
            change = changed(article, rng)
            if change is not None:
                new, size = change
                update.add(translate(new, store))
                update_bound += math.ceil(size / 4) + instructions
    return LLMRun(
        limit, articles, failed, instructions, cold, bound_requests, bound_tokens, worst,
        memory, warm, update, update_bound,
    )  # fmt: skip


class Unfinished(Exception):
    """An article the engine gave up on, and what it cost."""

    def __init__(self, spent: Spent) -> None:
        super().__init__(spent)
        self.spent = spent


def tokens_of_source(article: Article) -> int:
    """The visible text to translate (``source_characters``) in tokens, the server's rule."""
    return math.ceil(source_characters(article) / 4)


def measure_llm(corpus: list[Article]) -> None:
    print()
    print(
        f"corpus: {describe(corpus)}; engine llm against tests/llm_server.py (tokens = "
        f"⌈characters / 4⌉, the usage it reports), batch limits {BATCH_TOKEN_LIMITS} tokens"
    )
    for limit in BATCH_TOKEN_LIMITS:
        run = run_llm(corpus, limit)
        n, cold = len(run.articles), run.cold
        rss_requests = rss_tokens = 0
        for article in run.articles:
            requests, sent = rss_translator_cost(article)
            rss_requests += requests
            rss_tokens += sent
        print()
        print(
            f"batch_tokens = {limit}: {n} articles ({len(corpus) - n} left out: the fake "
            f"server leaves a unit in English, {run.failed.requests} requests spent on "
            f"them); instructions {run.instructions} tokens; units sent again {cold.reasked}; "
            f"characters sent: {cold.shares()}; RSS-Translator: one request per text node and "
            f"the title, its {tokens(RSS_TRANSLATOR_PROMPT)}-token instructions each time"
        )
        rows = [
            ("", "ours", "lower bound", "ours / bound", "goal", "RSS-Translator"),
            ("tokens sent per article", f"{cold.tokens / n:,.0f}",
             f"{run.bound_tokens / n:,.0f}",
             f"{cold.tokens / run.bound_tokens:.3f} × (worst article {run.worst:.2f})", "≤ 1.3",
             f"{rss_tokens / n:,.0f} ({rss_tokens / run.bound_tokens:.2f} × bound)"),
            ("requests per article", f"{cold.requests / n:.2f}",
             f"{run.bound_requests / n:.2f}",
             f"{cold.requests / run.bound_requests:.3f} ×", "≤ 1.1",
             f"{rss_requests / n:.1f} ({rss_requests / run.bound_requests:.1f} × bound)"),
            ("tokens, corpus with memory", f"{run.memory.tokens:,}", f"{run.bound_tokens:,}",
             f"{run.memory.tokens / run.bound_tokens:.3f} ×", "", ""),
            ("tokens, memory warm", f"{run.warm.tokens:,}", f"cold {cold.tokens:,}",
             f"{run.warm.tokens / cold.tokens:.3f} × cold ({run.warm.requests} requests)",
             "≤ 0.1", ""),
            ("tokens, 1 paragraph changed", f"{run.update.tokens:,}",
             f"{run.update_bound:,}",
             f"{run.update.tokens / run.update_bound:.3f} × ({run.update.requests} requests)",
             "", ""),
        ]  # fmt: skip
        print_table(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generated", type=int, default=40, help="generated newsletter issues")
    parser.add_argument(
        "--engine", choices=("libre", "llm", "both"), default="both", help="engines to measure"
    )
    args = parser.parse_args()

    print("building the corpus…", flush=True)
    corpus = real_pages() + real_feed_entries() + generated_issues(args.generated)
    if args.engine in ("libre", "both"):
        measure_libre(corpus)
    if args.engine in ("llm", "both"):
        measure_llm(corpus)


def describe(corpus: list[Article]) -> str:
    origins: dict[str, int] = {}
    for article in corpus:
        kind = article.origin.split(" ")[0]
        origins[kind] = origins.get(kind, 0) + 1
    return (
        f"{len(corpus)} articles ({origins.get('page', 0)} real pages, "
        f"{origins.get('feed', 0)} real feed entries, {origins.get('generated', 0)} generated "
        f"newsletter issues); {sum(map(source_characters, corpus)):,} source characters"
    )


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def measure_libre(corpus: list[Article]) -> None:
    with LibreTranslateServer() as server, tempfile.TemporaryDirectory() as tmp:
        settings = TranslationSettings(
            engine="libre",
            timeout=Duration(30),
            libre=EngineSettings(url=server.url("/"), api_key="bench"),
        )
        engine: Engine = build_engine(settings)
        limit = engine.max_chars
        store = Store(f"sqlite:///{tmp}/bench.db")
        store.upgrade()

        # 1. No memory: what segmentation, placeholders and batching cost by themselves.
        sources, bounds, cpu_ours, cpu_trafilatura = [], [], [], []
        requests_cold = characters_cold = 0
        for article in corpus:
            source = source_characters(article)
            sources.append(source)
            bounds.append(math.ceil(source / limit))
            before = (server.requests, server.characters)
            started = time.thread_time()
            translation = translate_article(
                article.title, article.html, engine, target_language="fr"
            )
            cpu_ours.append(time.thread_time() - started)
            assert translation.requests == server.requests - before[0]
            requests_cold += server.requests - before[0]
            characters_cold += server.characters - before[1]
            started = time.thread_time()
            trafilatura.extract(article.page, url="https://example.com/a", **TRAFILATURA_OPTIONS)
            cpu_trafilatura.append(time.thread_time() - started)

        # 2. With the translation memory in the database, the corpus in one run.
        before = (server.requests, server.characters)
        for article in corpus:
            translate_article(
                article.title, article.html, engine, target_language="fr", memory=store
            )
        requests_memory = server.requests - before[0]
        characters_memory = server.characters - before[1]

        # 3. One paragraph of every article changed, translated again with the memory.
        rng = random.Random(7)
        update_sent = update_paragraphs = updated = over = 0
        worst = 0.0
        for article in corpus:
            change = changed(article, rng)
            if change is None:
                continue
            new, size = change
            before = (server.requests, server.characters)
            translate_article(new.title, new.html, engine, target_language="fr", memory=store)
            sent = server.characters - before[1]
            update_sent += sent
            update_paragraphs += size
            updated += 1
            worst = max(worst, sent / size)
            over += sent > 1.2 * size

    n = len(corpus)
    total_source, bound = sum(sources), sum(bounds)
    print()
    print(f"corpus: {describe(corpus)}; engine libre, {limit:,} characters per request")
    print()
    rows = [
        ("requests per article", f"{requests_cold / n:.3f}",
         f"lower bound Σ⌈chars/{limit}⌉ / n = {bound / n:.3f}",
         f"{requests_cold / bound:.3f} × bound", "≤ 1.1"),
        ("characters sent, no memory", f"{characters_cold:,}",
         f"source characters {total_source:,}",
         f"{characters_cold / total_source:.3f} × source", "≤ 1.1"),
        ("characters sent, with memory", f"{characters_memory:,}",
         f"source characters {total_source:,}",
         f"{characters_memory / total_source:.3f} × source", "≤ 1.1"),
        ("requests, with memory", f"{requests_memory:,}", f"lower bound {bound:,}",
         f"{requests_memory / bound:.3f} × bound", ""),
        (f"update, 1 paragraph × {updated}", f"{update_sent:,}",
         f"changed paragraphs {update_paragraphs:,}",
         f"{update_sent / update_paragraphs:.3f} × (worst {worst:.2f}, {over} over 1.2)",
         "≤ 1.2"),
        ("CPU ms per article, ours", f"{1000 * statistics.mean(cpu_ours):.1f} mean",
         f"trafilatura.extract {1000 * statistics.mean(cpu_trafilatura):.1f} mean",
         f"{sum(cpu_ours) / sum(cpu_trafilatura):.2f} × trafilatura", ""),
        ("CPU ms per article, median", f"{1000 * statistics.median(cpu_ours):.1f}",
         f"trafilatura.extract {1000 * statistics.median(cpu_trafilatura):.1f}", "", ""),
    ]  # fmt: skip
    print_table(rows)


if __name__ == "__main__":
    main()
