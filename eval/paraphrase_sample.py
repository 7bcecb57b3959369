"""Which PIAF-dev questions the paraphrase sets rewrite (eval/README.md, "Paraphrase sets").

Prints one JSON line per chosen question: 160 on even articles (tuning), 80 on odd ones (reporting),
spread over the articles in turn, in a fixed order, so that every form rewrites the same questions.
Usage: python eval/paraphrase_sample.py ../shared/eval/piaf-dev.json > worklist.jsonl
"""

from __future__ import annotations

import json
import random
import sys

PER_HALF = {0: 160, 1: 80}  # article parity -> questions wanted
SEED = 25


def sample(data: list[dict]) -> list[dict]:
    """The chosen questions with what a writer needs: the article, its paragraph, the answer."""
    rng = random.Random(SEED)
    chosen = []
    for parity, wanted in PER_HALF.items():
        queues = []
        for number, article in enumerate(data):
            if number % 2 != parity:
                continue
            items = [
                {"id": qa["id"], "article": number, "title": article["title"], "context": paragraph["context"],
                 "question": qa["question"], "answer": qa["answers"][0]["text"]}
                for paragraph in article["paragraphs"] for qa in paragraph["qas"]
            ]
            rng.shuffle(items)
            queues.append(items)
        taken = 0
        while taken < wanted:
            for queue in queues:
                if queue and taken < wanted:
                    chosen.append(queue.pop())
                    taken += 1
    return chosen


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        data = json.load(handle)["data"]
    for item in sample(data):
        print(json.dumps(item, ensure_ascii=False))
