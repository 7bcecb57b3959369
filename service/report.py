"""``qa eval --report DIR``: one static HTML page with the figures, hit@k curves and missed questions.

The page has no script and no external resource, so it opens from disk. Every
piece of text is escaped with ``html.escape``; highlights are placed by offsets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from index.evaluation.runner import Outcome, SetScore
from index.text.corpus import Document

MAX_MISSED = 200  # missed questions listed per set
WINDOW = 300  # characters of gold context shown around the answer
COLORS = ("#1f5fbf", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0e7490")

DocumentTexts = Mapping[str, Document | str]


def write_report(
    scores: Sequence[SetScore],
    folder: Path,
    documents: Sequence[DocumentTexts | None] | None = None,
    max_missed: int = MAX_MISSED,
) -> Path:
    """Write ``folder/index.html`` and return its path.

    ``documents`` optionally holds, for each set in ``scores`` (same order), a
    mapping doc_id -> Document (or its text); with it, each missed question shows
    its gold answer inside the gold document.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    docs = list(documents or [])
    docs += [None] * (len(scores) - len(docs))
    path = folder / "index.html"
    path.write_text(render_report(scores, docs, max_missed), encoding="utf-8")
    return path


def render_report(scores: Sequence[SetScore], documents: Sequence[DocumentTexts | None], max_missed: int) -> str:
    when = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Evaluation report</title>",
        f"<style>{CSS}</style></head><body><main>",
        "<h1>Evaluation report</h1>",
        f'<p class="muted">Written {escape(when)} · {len(scores)} set{"s" if len(scores) != 1 else ""}.</p>',
        _figures_table(scores),
        _curves(scores),
    ]
    for index, (score, docs) in enumerate(zip(scores, documents, strict=True)):
        parts.append(_set_section(index, score, docs, max_missed))
    parts.append("</main></body></html>\n")
    return "\n".join(parts)


def _num(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _figures_table(scores: Sequence[SetScore]) -> str:
    head = ("set", "n", "hit@1", "hit@5", "mrr@10", "passage chars", "max chars", "highlight hit", "seconds")
    rows = []
    for score in scores:
        cells = [
            _num(score.n),
            _num(score.hit_at_1),
            _num(score.hit_at_5),
            _num(score.mrr_at_10),
            _num(score.passage_chars, 0),
            _num(score.max_passage_chars),
            _num(score.highlight_hit),
            _num(score.seconds, 1),
        ]
        rows.append(
            f'<tr><th scope="row">{escape(score.name)}</th>' + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        )
        for lang, by in score.by_lang.items():
            lang_cells = [_num(by.get("n")), _num(by.get("hit@1")), _num(by.get("hit@5"))] + [""] * 5
            rows.append(
                f'<tr class="lang"><th scope="row">lang = {escape(str(lang))}</th>'
                + "".join(f"<td>{c}</td>" for c in lang_cells)
                + "</tr>"
            )
    header = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    return (
        '<section><h2>Figures</h2><div class="scroll"><table class="figures">'
        "<caption>Per set; indented rows break a set down by question language.</caption>"
        f"<thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _curves(scores: Sequence[SetScore]) -> str:
    """hit@k for k = 1..20, one polyline per set, drawn by hand."""
    width, height, left, right, top, bottom = 640, 320, 48, 16, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    max_k = max((len(s.curve) for s in scores), default=20) or 20

    def x(k: int) -> float:
        return left + (k - 1) * plot_w / max(max_k - 1, 1)

    def y(v: float) -> float:
        return top + (1 - v) * plot_h

    out = [
        f'<svg class="curve" viewBox="0 0 {width} {height}" role="img" aria-labelledby="curve-title">',
        '<title id="curve-title">hit@k for k = 1 to 20, per set</title>',
    ]
    for tick in range(0, 11, 2):
        v = tick / 10
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>')
        out.append(f'<text class="tick" x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
    for k in range(1, max_k + 1):
        if k == 1 or k % 5 == 0:
            out.append(f'<text class="tick" x="{x(k):.1f}" y="{height - bottom + 16}" text-anchor="middle">{k}</text>')
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}"/>')
    out.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}"/>')
    out.append(f'<text class="label" x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">k</text>')
    legend = []
    for index, score in enumerate(scores):
        color = COLORS[index % len(COLORS)]
        points = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in enumerate(score.curve, start=1))
        name = escape(score.name)
        out.append(
            f'<polyline class="set-curve" fill="none" stroke="{color}" stroke-width="2.5" points="{points}">'
            f"<title>{name}</title></polyline>"
        )
        for k, v in enumerate(score.curve, start=1):
            out.append(
                f'<circle cx="{x(k):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"><title>{name}: hit@{k} = {v:.3f}'
                "</title></circle>"
            )
        legend.append(f'<li><span class="swatch" style="background:{color}"></span>{name}</li>')
    out.append("</svg>")
    table = _curve_table(scores, max_k)
    return (
        '<section><h2>hit@k curve</h2><div class="chart">'
        + "".join(out)
        + f'<ul class="legend">{"".join(legend)}</ul></div>{table}</section>'
    )


def _curve_table(scores: Sequence[SetScore], max_k: int) -> str:
    """The curve's numbers, for readers who cannot see the chart."""
    head = "".join(f'<th scope="col">{k}</th>' for k in range(1, max_k + 1))
    rows = "".join(
        f'<tr><th scope="row">{escape(s.name)}</th>' + "".join(f"<td>{v:.2f}</td>" for v in s.curve) + "</tr>"
        for s in scores
    )
    return (
        '<details><summary>hit@k values</summary><div class="scroll"><table class="values">'
        f'<thead><tr><th scope="col">k</th>{head}</tr></thead><tbody>{rows}</tbody></table></div></details>'
    )


def _set_section(index: int, score: SetScore, docs: DocumentTexts | None, max_missed: int) -> str:
    missed = [o for o in score.outcomes if o.rank != 1]
    shown = missed[:max_missed]
    left_out = len(missed) - len(shown)
    parts = [
        f'<section id="set-{index}"><h2>Missed questions · {escape(score.name)}</h2>',
        f'<p class="muted">{len(missed)} of {len(score.outcomes)} questions were not answered by the first passage'
        f" (rank ≠ 1).</p>",
    ]
    if not missed:
        parts.append("<p>None: every question was answered by the first passage.</p></section>")
        return "".join(parts)
    parts.append('<ol class="missed">')
    parts.extend(_missed_item(outcome, docs) for outcome in shown)
    parts.append("</ol>")
    if left_out:
        parts.append(f'<p class="left-out">{left_out} more missed question{"s" if left_out != 1 else ""} left out.</p>')
    parts.append("</section>")
    return "".join(parts)


def _missed_item(outcome: Outcome, docs: DocumentTexts | None) -> str:
    q = outcome.question
    rank = "not in the top 20" if outcome.rank is None else f"first hit at rank {outcome.rank}"
    if outcome.rank is None and outcome.answer_rank is not None:
        rank += f", at rank {outcome.answer_rank} of a deeper search"
    elif outcome.rank is None and outcome.answer_passage is not None:
        rank += " nor in a deeper search"
    lang = f" · {escape(q.lang)}" if q.lang else ""
    answers = " | ".join(escape(a) for a in q.answers) or "–"
    parts = [
        '<li class="miss">',
        f'<p class="question">{escape(q.question)}</p>',
        f'<p class="muted">{escape(q.qid)}{lang} · {rank} · answer: <span class="answer">{answers}</span></p>',
        '<div class="pair">',
        _gold_block(outcome, docs),
        _top_block(outcome),
        "</div></li>",
    ]
    return "".join(parts)


def _text_of(docs: DocumentTexts | None, doc_id: str | None) -> tuple[str, str] | None:
    """(title, text) of a document, when the caller passed the documents."""
    if docs is None or doc_id is None or doc_id not in docs:
        return None
    doc = docs[doc_id]
    if isinstance(doc, Document):
        return doc.title, doc.text
    return doc_id, str(doc)


def _gold_span(outcome: Outcome, text: str, offset: int = 0) -> tuple[int, int] | None:
    """Where the answer is in ``text`` (a document, or a passage starting at ``offset`` in its document)."""
    q = outcome.question
    for start, end in q.gold_spans:
        if 0 <= start - offset < end - offset <= len(text):
            return start - offset, end - offset
    folded = text.casefold()  # corpus sets carry answer strings, not offsets
    for answer in q.answers:
        if answer.strip():
            at = folded.find(answer.casefold())
            if at >= 0 and len(folded) == len(text):
                return at, at + len(answer)
    return None


def _answer_block(outcome: Outcome) -> str:
    """The best-ranked passage that holds the answer, the answer marked in it."""
    p = outcome.answer_passage
    rank = f"rank {outcome.answer_rank}" if outcome.answer_rank else "not ranked by the search"
    score = "" if p.score != p.score else f" · score {p.score:.3f}"  # NaN: taken from the document, not the search
    span = _gold_span(outcome, p.text, p.start)
    body = _marked(p.text, 0, len(p.text), *span) if span else escape(p.text)
    return (
        f'<div class="gold"><h3>Best-ranked passage holding the answer</h3><p class="doc">{escape(p.title)} · '
        f'{escape(p.doc_id)} [{p.start}:{p.end}] · {rank}{score}</p><p class="text">{body}</p></div>'
    )


def _gold_block(outcome: Outcome, docs: DocumentTexts | None) -> str:
    if outcome.answer_passage is not None:
        return _answer_block(outcome)
    q = outcome.question
    found = _text_of(docs, q.gold_doc)
    heading = "Gold answer in its passage"
    if found is None:
        where = f" ({escape(q.gold_doc)})" if q.gold_doc else ""
        return (
            f'<div class="gold"><h3>{heading}</h3>'
            f'<p class="muted">Gold document not available{where}; expected: '
            f"{escape(' | '.join(q.answers))}</p></div>"
        )
    title, text = found
    span = _gold_span(outcome, text)
    if span is None:
        return (
            f'<div class="gold"><h3>{heading}</h3><p class="muted">{escape(title)}: answer not located in the text.'
            "</p></div>"
        )
    start, end = span
    half = max(0, (WINDOW - (end - start)) // 2)
    lo, hi = _snap(text, max(0, start - half), min(len(text), end + half))
    body = _marked(text, lo, hi, start, end)
    return (
        f'<div class="gold"><h3>{heading}</h3><p class="doc">{escape(title)} · {escape(q.gold_doc or "")} '
        f'[{start}:{end}]</p><p class="text">{"…" if lo > 0 else ""}{body}{"…" if hi < len(text) else ""}</p></div>'
    )


def _snap(text: str, lo: int, hi: int) -> tuple[int, int]:
    """Widen a window to whole words where a space is near."""
    if lo > 0:
        space = text.rfind(" ", max(0, lo - 20), lo)
        lo = space + 1 if space >= 0 else lo
    if hi < len(text):
        space = text.find(" ", hi, min(len(text), hi + 20))
        hi = space if space >= 0 else hi
    return lo, hi


def _marked(text: str, lo: int, hi: int, start: int, end: int) -> str:
    """text[lo:hi], escaped, with text[start:end] (clipped to the window) in a <mark>."""
    a, b = max(lo, min(start, hi)), max(lo, min(end, hi))
    if b <= a:
        return escape(text[lo:hi])
    return f"{escape(text[lo:a])}<mark>{escape(text[a:b])}</mark>{escape(text[b:hi])}"


def _top_block(outcome: Outcome) -> str:
    heading = "Ranked first instead"
    if not outcome.passages:
        return f'<div class="top"><h3>{heading}</h3><p class="muted">No passage was returned.</p></div>'
    p = outcome.passages[0]
    body = _marked(p.text, 0, len(p.text), p.highlight.start - p.start, p.highlight.end - p.start)
    return (
        f'<div class="top"><h3>{heading}</h3><p class="doc">{escape(p.title)} · {escape(p.doc_id)} '
        f'[{p.start}:{p.end}] · score {p.score:.3f}</p><p class="text">{body}</p></div>'
    )


CSS = """
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif;
color:#1d2330;background:#f5f6f8}
main{max-width:64rem;margin:0 auto;padding:1rem}
h1{margin:.25rem 0}h2{margin:1.5rem 0 .5rem;font-size:1.2rem}h3{margin:0 0 .25rem;font-size:.95rem}
.muted{color:#5a6272;margin:.25rem 0}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}
caption{text-align:left;color:#5a6272;font-size:.85rem;padding:.25rem 0}
th,td{border:1px solid #d8dce3;padding:.3rem .6rem;text-align:right}
th[scope=row]{text-align:left;font-weight:600;max-width:28rem;overflow-wrap:anywhere}
thead th{background:#eef1f5}thead th:first-child{text-align:left}
tr.lang th{font-weight:400;padding-left:1.6rem;color:#3b4252}
.chart{background:#fff;border:1px solid #d8dce3;border-radius:.5rem;padding:.5rem;max-width:44rem}
svg.curve{width:100%;height:auto;display:block}
.grid{stroke:#e5e8ee}.axis{stroke:#5a6272}.tick,.label{font-size:12px;fill:#5a6272}
.legend{list-style:none;margin:.25rem 0 0;padding:0 0 0 3rem;display:flex;flex-wrap:wrap;gap:.25rem 1rem}
.swatch{display:inline-block;width:.9rem;height:.9rem;border-radius:.2rem;margin-right:.35rem;vertical-align:-.1rem}
details{margin:.5rem 0}.values td,.values th{padding:.2rem .4rem;font-size:.85rem}
.missed{padding-left:1.5rem}
.miss{background:#fff;border:1px solid #d8dce3;border-radius:.5rem;padding:.5rem .9rem;margin:0 0 .75rem}
.question{font-weight:600;margin:.2rem 0}
.answer{color:#1d2330;font-weight:600}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:.75rem}
@media (max-width:45rem){.pair{grid-template-columns:1fr}}
.gold,.top{border-left:4px solid #15803d;padding:.25rem .6rem;background:#f7fbf8}
.top{border-left-color:#c2410c;background:#fdf8f5}
.doc{color:#5a6272;font-size:.8rem;margin:0 0 .25rem;overflow-wrap:anywhere}
.text{white-space:pre-wrap;overflow-wrap:anywhere;margin:0;font-size:.9rem}
mark{background:#ffe58a;color:inherit;padding:0 .1em;border-radius:.15em}
.left-out{font-style:italic}
"""
