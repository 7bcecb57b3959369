"""Sentence ends of the hand rules (index/text/spans.py) beside pysbd, syntok and sentencex.

Usage: python eval/compare_segmenters.py [SQuAD file to time on]. A segmenter that is not
installed is skipped (`pip install pysbd syntok sentencex` into a scratch target to try them).
For each set of eval/sentence-ends.json: true sentence ends found, and false ends, per language.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from index.text.spans import split_sentences

GOLD = Path(__file__).with_name("sentence-ends.json")
Segmenter = Callable[[str, str], list[int]]  # (text, lang) -> sentence end offsets


def hand(text: str, lang: str) -> list[int]:
    return [s.end for s in split_sentences(text)]


def segmenters() -> dict[str, Segmenter]:
    found: dict[str, Segmenter] = {"hand rules": hand}
    try:
        import pysbd

        cache: dict[str, pysbd.Segmenter] = {}

        def by_pysbd(text: str, lang: str) -> list[int]:
            seg = cache.setdefault(lang, pysbd.Segmenter(language=lang, clean=False, char_span=True))
            return [s.end for s in seg.segment(text)]

        found["pysbd"] = by_pysbd
    except ImportError:
        pass
    try:
        from syntok import segmenter

        def by_syntok(text: str, lang: str) -> list[int]:
            return [s[-1].offset + len(s[-1].value) for p in segmenter.analyze(text) for s in p]

        found["syntok"] = by_syntok
    except ImportError:
        pass
    try:
        import sentencex

        def by_sentencex(text: str, lang: str) -> list[int]:
            ends, cursor = [], 0
            for piece in sentencex.segment(lang, text):
                cursor = text.index(piece, cursor) + len(piece)
                ends.append(cursor)
            return ends

        found["sentencex"] = by_sentencex
    except ImportError:
        pass
    return found


def score(segment: Segmenter, sentences: list[str], lang: str) -> tuple[int, int]:
    """(true ends found, false ends) on sentences joined by one space."""
    text = " ".join(sentences)
    gold, cursor = set(), 0
    for sentence in sentences:
        cursor += len(sentence)
        gold.add(cursor)
        cursor += 1
    got = {len(text[:end].rstrip()) for end in segment(text, lang)}
    return len(got & gold), len(got - gold)


def main() -> None:
    sets = json.loads(GOLD.read_text(encoding="utf-8"))
    found = segmenters()
    for set_name in ("tuned", "held_out"):
        print(f"{set_name}: true ends found / false ends, per language")
        for name, segment in found.items():
            cells = []
            for lang, sentences in sets[set_name].items():
                true, false = score(segment, sentences, lang)
                cells.append(f"{lang} {true}/{len(sentences)} {false}")
            print(f"  {name:<11} " + ", ".join(cells))
    if len(sys.argv) > 1:
        from index.evaluation.datasets import squad_documents

        texts = [doc.text for doc in squad_documents(Path(sys.argv[1]))[0]]
        print(f"time to split {len(texts)} documents ({sum(map(len, texts))} characters), as French:")
        for name, segment in found.items():
            began = time.perf_counter()
            count = sum(len(segment(text, "fr")) for text in texts)
            print(f"  {name:<11} {time.perf_counter() - began:.2f} s, {count} sentences")


if __name__ == "__main__":
    main()
