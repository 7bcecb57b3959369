"""Reading evaluation sets into documents and questions with gold answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

from index.corpus import Document
from index.errors import EvalDataError

PARAGRAPH_JOIN = "\n\n"
ANSWER_REACH = 20  # characters an answer may be moved to find its text


@dataclass(frozen=True)
class EvalQuestion:
    """A question and what counts as finding its answer."""

    qid: str
    question: str
    answers: tuple[str, ...]
    gold_doc: str | None = None
    gold_spans: tuple[tuple[int, int], ...] = ()  # offsets in gold_doc, SQuAD sets only
    lang: str | None = None


@dataclass
class EvalSet:
    """Questions, plus the documents to index for them (None: use the live corpus index)."""

    name: str
    questions: list[EvalQuestion]
    documents: list[Document] | None = None
    meta: dict = field(default_factory=dict)


def load_eval_file(path: Path) -> EvalSet:
    """A SQuAD ``.json`` (with its own documents) or a ``.jsonl`` question list."""
    path = Path(path)
    if not path.is_file():
        raise EvalDataError(f"evaluation file {path} does not exist")
    if path.suffix == ".jsonl":
        return load_jsonl_set(path)
    if path.suffix == ".json":
        return load_squad_set(path)
    raise EvalDataError(f"evaluation file {path} must end in .json (SQuAD) or .jsonl")


def squad_documents(path: Path) -> tuple[list[Document], list[EvalQuestion]]:
    """Each SQuAD article as one document (paragraphs joined by a blank line), and its questions."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))["data"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EvalDataError(f"{path} is not a SQuAD-format JSON file: {exc}") from exc
    documents, questions = [], []
    for number, article in enumerate(data):
        doc_id = f"{Path(path).stem}/{number:04d}"
        offset, parts = 0, []
        for paragraph in article["paragraphs"]:
            context = paragraph["context"]
            for qa in paragraph["qas"]:
                spans = tuple(
                    (offset + a["answer_start"], offset + a["answer_start"] + len(a["text"])) for a in qa["answers"]
                )
                answers = tuple(a["text"] for a in qa["answers"])
                questions.append(EvalQuestion(str(qa["id"]), qa["question"], answers, doc_id, spans))
            parts.append(context)
            offset += len(context) + len(PARAGRAPH_JOIN)
        title = str(article.get("title", doc_id)).replace("_", " ")
        documents.append(Document(doc_id, title, PARAGRAPH_JOIN.join(parts), {"source": str(path)}))
    return documents, questions


def load_squad_set(path: Path) -> EvalSet:
    """A SQuAD file's articles and questions, with answers whose offsets are off by a little moved to their text.

    Published sets have a few such records (two of PIAF v1.0's 3,835 answers are one
    character off); they cost an answer, or a question with no answer left, not the run.
    ``meta["repairs"]`` counts what was moved and skipped.
    """
    documents, questions = squad_documents(path)
    kept, moved, skipped = [], 0, 0
    for question in questions:
        doc = documents[int(question.gold_doc.rsplit("/", 1)[1])]
        aligned = align_answers(doc.text, question)
        moved += aligned.moved
        skipped += aligned.skipped
        if aligned.question is not None:
            kept.append(aligned.question)
    repairs = {"moved": moved, "skipped": skipped, "questions_skipped": len(questions) - len(kept)}
    return EvalSet(Path(path).name, kept, documents, {"repairs": repairs})


@dataclass(frozen=True)
class Aligned:
    """A question with its answers checked against the text; None when none of them is usable."""

    question: EvalQuestion | None
    moved: int
    skipped: int


def align_answers(text: str, question: EvalQuestion, reach: int = ANSWER_REACH) -> Aligned:
    """Keep each answer whose span holds its text, move one found within ``reach`` characters, drop the rest."""
    spans, answers, moved = [], [], 0
    for (start, end), answer in zip(question.gold_spans, question.answers, strict=True):
        if answer.strip() and text[start:end] == answer:
            spans.append((start, end))
        elif answer.strip() and (found := nearest_occurrence(text, answer, start, reach)) is not None:
            spans.append((found, found + len(answer)))
            moved += 1
        else:
            continue
        answers.append(answer)
    skipped = len(question.answers) - len(answers)
    if not answers:
        return Aligned(None, moved, skipped)
    aligned = replace(question, answers=tuple(answers), gold_spans=tuple(spans))
    return Aligned(aligned, moved, skipped)


def nearest_occurrence(text: str, needle: str, start: int, reach: int) -> int | None:
    """Where ``needle`` occurs in ``text`` nearest to ``start``, at most ``reach`` characters away."""
    lo, hi = max(0, start - reach), min(len(text), start + reach + len(needle))
    best, pos = None, text.find(needle, lo, hi)
    while pos != -1:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        pos = text.find(needle, pos + 1, hi)
    return best


def repairs_note(eval_set: EvalSet) -> str | None:
    """One line on the answers ``load_squad_set`` moved or skipped; None if it changed nothing."""
    repairs = eval_set.meta.get("repairs")
    if not repairs or not (repairs["moved"] or repairs["skipped"]):
        return None
    return (
        f"note: {eval_set.name}: {repairs['moved']} answers moved to their text within {ANSWER_REACH} characters "
        f"of their offset, {repairs['skipped']} skipped (text not found), "
        f"{repairs['questions_skipped']} questions left without an answer skipped"
    )


def load_jsonl_set(path: Path) -> EvalSet:
    questions = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            answers = tuple(str(a) for a in record["answers"])
            questions.append(
                EvalQuestion(
                    str(record["id"]),
                    str(record["question"]),
                    answers,
                    record.get("doc_id"),
                    lang=record.get("lang"),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalDataError(f"{path}:{number}: expected {{id, question, answers, doc_id?}}: {exc}") from exc
    if not questions:
        raise EvalDataError(f"{path} holds no questions")
    return EvalSet(Path(path).name, questions)


def replace_questions(target: EvalSet, source_path: Path) -> EvalSet:
    """Swap each question's text for the one with the same id in another SQuAD file."""
    _, source = squad_documents(source_path)
    by_id = {q.qid: q.question for q in source}
    missing = [q.qid for q in target.questions if q.qid not in by_id]
    if missing:
        raise EvalDataError(f"{source_path} lacks {len(missing)} question ids of {target.name}, e.g. {missing[0]}")
    questions = [
        EvalQuestion(q.qid, by_id[q.qid], q.answers, q.gold_doc, q.gold_spans, q.lang) for q in target.questions
    ]
    name = f"{target.name} <- {Path(source_path).name}"
    return EvalSet(name, questions, target.documents, dict(target.meta))


def every_other_article(eval_set: EvalSet, parity: str) -> EvalSet:
    """The questions about the ``even`` or ``odd`` articles of a SQuAD set (counted from 0), all articles kept.

    Splitting by article lets one half train something (a question reference)
    and the other half test it on articles whose questions it never saw.
    """
    if eval_set.documents is None:
        raise EvalDataError(f"{eval_set.name} has no articles of its own to split: use a SQuAD file")
    wanted = {doc.doc_id for i, doc in enumerate(eval_set.documents) if i % 2 == (parity == "odd")}
    questions = [q for q in eval_set.questions if q.gold_doc in wanted]
    return EvalSet(f"{eval_set.name} ({parity} articles)", questions, eval_set.documents, dict(eval_set.meta))
