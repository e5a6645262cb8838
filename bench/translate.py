"""Translation cost: requests and characters sent, beside their lower bounds; CPU beside
trafilatura.

    .venv/bin/python bench/translate.py
    .venv/bin/python bench/translate.py --generated 60     # more generated issues

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
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import lxml.html
import trafilatura

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import LibreTranslateServer  # noqa: E402
from translation_desk import real_article_pages  # noqa: E402

from aggregator.config import Duration, EngineSettings, TranslationSettings  # noqa: E402
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generated", type=int, default=40, help="generated newsletter issues")
    args = parser.parse_args()

    print("building the corpus…", flush=True)
    corpus = real_pages() + real_feed_entries() + generated_issues(args.generated)
    origins: dict[str, int] = {}
    for article in corpus:
        kind = article.origin.split(" ")[0]
        origins[kind] = origins.get(kind, 0) + 1

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
    print(
        f"corpus: {n} articles ({origins.get('page', 0)} real pages, "
        f"{origins.get('feed', 0)} real feed entries, {origins.get('generated', 0)} generated "
        f"newsletter issues); {total_source:,} source characters; engine libre, "
        f"{limit:,} characters per request"
    )
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
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


if __name__ == "__main__":
    main()
