"""Reading evaluation sets into documents and questions with gold answers."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from index.errors import EvalDataError
from index.text.corpus import Document
from index.text.language import UNKNOWN, detect_question_language

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
    """Questions, plus the documents to index for them (None: use the live corpus index).

    ``meta["originals"]``, set by ``replace_questions``: each replaced question as the target file asked it.
    """

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
    lang = file_language(kept)
    kept = [replace(question, lang=lang) for question in kept]
    return EvalSet(Path(path).name, kept, documents, {"repairs": repairs})


def file_language(questions: Sequence[EvalQuestion]) -> str:
    """The language most of a file's questions are detected in (``index.text.language``), ``"unknown"`` if none.

    A SQuAD file holds one language: its few questions the detector takes for another
    (8 of PIAF's 1,683 read as Italian) keep the file's.
    """
    found = Counter(detect_question_language(question.question) for question in questions)
    found.pop(UNKNOWN, None)
    return found.most_common(1)[0][0] if found else UNKNOWN


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
                    lang=record.get("lang") or detect_question_language(str(record["question"])),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise EvalDataError(f"{path}:{number}: expected {{id, question, answers, doc_id?}}: {exc}") from exc
    if not questions:
        raise EvalDataError(f"{path} holds no questions")
    return EvalSet(Path(path).name, questions)


def replace_questions(target: EvalSet, source_path: Path) -> EvalSet:
    """The target's questions asked with the text of another file, same ids, gold documents and answers.

    ``source_path`` is a SQuAD ``.json`` holding every question id of the target (each question is
    swapped, and takes that file's language), or a ``.jsonl`` of lines ``{"id", "question", "lang"?}``
    rewriting some of them: the set is then those questions only, each in its line's ``lang`` (detected
    from its text when absent). ``meta["originals"]`` keeps the target's own questions, for
    ``original_questions``.
    """
    source_path = Path(source_path)
    if not source_path.is_file():
        raise EvalDataError(f"questions file {source_path} does not exist")
    if source_path.suffix == ".jsonl":
        rewritten = _rewritten_questions(target, source_path)
    else:
        _, source = squad_documents(source_path)
        lang = file_language(source)
        by_id = {q.qid: (q.question, lang) for q in source}
        missing = [q.qid for q in target.questions if q.qid not in by_id]
        if missing:
            raise EvalDataError(f"{source_path} lacks {len(missing)} question ids of {target.name}, e.g. {missing[0]}")
        rewritten = by_id
    kept = [q for q in target.questions if q.qid in rewritten]
    questions = [replace(q, question=rewritten[q.qid][0], lang=rewritten[q.qid][1]) for q in kept]
    name = f"{target.name} <- {source_path.name}"
    return EvalSet(name, questions, target.documents, {**target.meta, "originals": {q.qid: q for q in kept}})


def _rewritten_questions(target: EvalSet, path: Path) -> dict[str, tuple[str, str]]:
    """Question id -> (text, language) of a ``.jsonl`` of rewritten questions, every id one of the target's."""
    known = {q.qid for q in target.questions}
    rewritten: dict[str, tuple[str, str]] = {}
    unknown: list[tuple[int, str]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            qid, question, lang = str(record["id"]), str(record["question"]), record.get("lang")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise EvalDataError(f"{path}:{number}: expected {{id, question, lang?}}: {exc}") from exc
        if qid in rewritten:
            raise EvalDataError(f"{path}:{number}: question id {qid} appears twice")
        if qid not in known:
            unknown.append((number, qid))
        rewritten[qid] = (question, str(lang) if lang else detect_question_language(question))
    if unknown:
        (number, qid), more = unknown[0], len(unknown) - 1
        others = f" (and {more} more)" if more else ""
        raise EvalDataError(f"{path}:{number}: question id {qid}{others} is not a question of {target.name}")
    if not rewritten:
        raise EvalDataError(f"{path} holds no questions")
    return rewritten


def original_questions(eval_set: EvalSet) -> EvalSet | None:
    """The same question ids as the target file asked them (before ``replace_questions``); None if not replaced."""
    originals = eval_set.meta.get("originals")
    if originals is None:
        return None
    questions = [originals[q.qid] for q in eval_set.questions]
    return EvalSet(f"{eval_set.name} (original questions)", questions, eval_set.documents)


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
