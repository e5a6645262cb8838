"""Language per entry and per block: offline, deterministic, and careful with short text."""

from __future__ import annotations

from aggregator.extraction.language import MIN_LETTERS, detect, detect_among, is_language, letters

ENGLISH = "While a group of young engineers was taking over the computer systems of the state"
FRENCH = "Pendant qu'un groupe de jeunes ingénieurs prenait le contrôle des systèmes de l'État"
GERMAN = "Während eine Gruppe junger Ingenieure die Computersysteme des Staates übernahm"


def test_entries_are_told_apart_among_every_language() -> None:
    assert detect(ENGLISH) == "en"
    assert detect(FRENCH) == "fr"
    assert detect(GERMAN) == "de"
    assert is_language(ENGLISH, ["en"]) and not is_language(GERMAN, ["en"])


def test_too_little_text_has_no_language() -> None:
    assert letters("OpenAI 2025!") < MIN_LETTERS
    assert detect("OpenAI 2025!") is None
    assert detect_among("Jill", ["en", "fr"]) is None
    assert detect("12 345 678, 0.091 GB/s") is None


def test_short_blocks_are_judged_between_the_languages_that_matter() -> None:
    # Headings too short for a guess among 97 languages are clear between two.
    assert detect_among("Breaking Down Barriers", ["en", "fr"]) == "en"
    assert detect_among("Briser les barrières entre nous", ["en", "fr"]) == "fr"
    assert detect_among("Jill Binder, speaking at a WordCamp", ["en", "fr"]) == "en"
    assert detect_among(GERMAN, ["en"]) == "en"  # one candidate: nothing to decide


def test_detection_is_deterministic_and_leaves_the_full_model_alone() -> None:
    results = {(detect(ENGLISH), detect_among(FRENCH, ["en", "fr"])) for _ in range(20)}
    assert results == {("en", "fr")}
    assert detect(GERMAN) == "de"  # the restricted models did not narrow the full one
