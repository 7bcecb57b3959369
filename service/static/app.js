// The ask page: POST /ask, list the passages, open a document at a passage.
// All DOM is built with createElement/textContent: document text is never parsed as HTML.
// Offsets from the API count Unicode code points (Python str indices), so text is sliced
// as arrays of code points, never searched.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const form = $("ask-form");
  const input = $("question");
  const kSelect = $("k");
  const langSelect = $("lang");
  const sinceInput = $("since");
  const untilInput = $("until");
  const button = $("ask-button");
  const statusEl = $("status");
  const errorEl = $("error");
  const resultsView = $("results-view");
  const results = $("results");
  const docView = $("doc-view");
  const docTitle = $("doc-title");
  const docMeta = $("doc-meta");
  const docText = $("doc-text");

  let lastLink = null; // the result link that opened the document view, to return focus to it
  let resultsStatus = ""; // the status line of the last answer, restored when leaving a document
  let docRequest = 0; // ignore stale document responses

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Slice by code points: Array.from splits a string into code points, like Python indices.
  function slicer(text) {
    const points = Array.from(text);
    return (start, end) => points.slice(start, end).join("");
  }

  function showError(message) {
    errorEl.textContent = message;
    errorEl.hidden = !message;
  }

  function setStatus(message) {
    statusEl.textContent = message;
  }

  // A readable message from an error response: {"detail": "..."} or FastAPI's list form.
  async function errorMessage(response) {
    let detail = null;
    try {
      const body = await response.json();
      detail = body && body.detail;
    } catch (_) {
      detail = null;
    }
    if (Array.isArray(detail)) {
      detail = detail.map((d) => (d && d.msg ? d.msg : String(d))).join("; ");
    } else if (detail && typeof detail === "object") {
      detail = JSON.stringify(detail);
    }
    if (typeof detail === "string" && detail.trim()) {
      detail = detail.replace(/Value error, /g, "");
      return capitalize(detail);
    }
    if (response.status === 503) return "The service has no index loaded yet. Try again later.";
    return `The server answered ${response.status} ${response.statusText || ""}`.trim() + ".";
  }

  function capitalize(text) {
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  function docHref(passage) {
    const params = new URLSearchParams({
      doc: passage.doc_id,
      start: String(passage.start),
      end: String(passage.end),
      hs: String(passage.highlight.start),
      he: String(passage.highlight.end),
    });
    return "#" + params.toString();
  }

  function documentUrl(docId) {
    return "/documents/" + docId.split("/").map(encodeURIComponent).join("/");
  }

  // Append text[start:end] to parent with the sub-range [hs, he) inside a <mark>.
  function appendMarked(parent, slice, start, end, hs, he, markClass) {
    const a = Math.max(start, Math.min(hs, end));
    const b = Math.max(a, Math.min(he, end));
    if (a > start) parent.appendChild(document.createTextNode(slice(start, a)));
    if (b > a) parent.appendChild(el("mark", markClass, slice(a, b)));
    if (end > b) parent.appendChild(document.createTextNode(slice(b, end)));
  }

  function renderPassage(passage, rank) {
    const item = el("li", "result");
    const head = el("div", "result-head");
    const title = el("h3", "result-title", passage.title || passage.doc_id);
    const score = el("span", "score", `score ${Number(passage.score).toFixed(3)}`);
    head.append(title, score);

    const body = el("p", "passage-text");
    const length = Array.from(passage.text).length;
    const hs = passage.highlight.start - passage.start;
    const he = passage.highlight.end - passage.start;
    appendMarked(body, slicer(passage.text), 0, length, hs, he, "sentence");

    const link = el("a", "open-doc", "Open in document");
    link.href = docHref(passage);
    link.setAttribute("aria-label", `Open passage ${rank} in ${passage.title || passage.doc_id}`);
    link.addEventListener("click", () => {
      lastLink = link;
    });
    const foot = el("p", "result-foot");
    const where = el("span", "where", `${passage.doc_id} · characters ${passage.start}–${passage.end}`);
    foot.append(link, where);

    item.append(head, body, foot);
    return item;
  }

  // The filters object of POST /ask from the language and date fields; null when none is set.
  function filters() {
    const out = {};
    if (langSelect.value) out.lang = [langSelect.value];
    const published = {};
    if (sinceInput.value) published.gte = sinceInput.value;
    if (untilInput.value) published.lte = untilInput.value;
    if (Object.keys(published).length) out.published = published;
    return Object.keys(out).length ? out : null;
  }

  async function ask(event) {
    if (event) event.preventDefault();
    const question = input.value;
    const k = Number(kSelect.value) || 5;
    const chosen = filters();
    showError("");
    setStatus("Searching…");
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    const began = performance.now();
    let response;
    try {
      response = await fetch("/ask", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(chosen ? { question, k, filters: chosen } : { question, k }),
      });
    } catch (_) {
      finish();
      setStatus("");
      showError("Could not reach the server. Check that it is running and try again.");
      return;
    }
    try {
      if (!response.ok) {
        const message = await errorMessage(response);
        setStatus("");
        showError(message);
        return;
      }
      const data = await response.json();
      const roundTrip = performance.now() - began;
      results.replaceChildren(...data.passages.map((p, i) => renderPassage(p, i + 1)));
      const timing = `${Number(data.took_ms).toFixed(0)} ms search, ${roundTrip.toFixed(0)} ms round trip`;
      resultsStatus = data.passages.length
        ? `${plural(data.passages.length, "passage")} found in ${timing}.`
        : `No passage found${chosen ? " in the documents the filters keep" : ""} (${timing}).`;
      setStatus(resultsStatus);
      showResults(false);
      if (location.hash) history.pushState(null, "", location.pathname + location.search);
    } catch (_) {
      setStatus("");
      showError("The server sent an answer this page cannot read.");
    } finally {
      finish();
    }
  }

  function finish() {
    button.disabled = false;
    form.removeAttribute("aria-busy");
  }

  function showResults(restoreFocus) {
    docView.hidden = true;
    resultsView.hidden = false;
    form.hidden = false;
    document.title = "Ask the corpus";
    if (restoreFocus) setStatus(resultsStatus);
    if (restoreFocus && lastLink && document.contains(lastLink)) lastLink.focus();
  }

  async function showDocument(params) {
    const docId = params.get("doc");
    const start = parseInt(params.get("start"), 10);
    const end = parseInt(params.get("end"), 10);
    const hs = parseInt(params.get("hs"), 10);
    const he = parseInt(params.get("he"), 10);
    const request = ++docRequest;
    showError("");
    resultsView.hidden = true;
    docView.hidden = false;
    docTitle.textContent = "Loading…";
    docMeta.textContent = "";
    docText.replaceChildren();
    let response;
    try {
      response = await fetch(documentUrl(docId), { headers: { Accept: "application/json" } });
    } catch (_) {
      if (request === docRequest) showError("Could not reach the server to open the document.");
      return;
    }
    if (request !== docRequest) return;
    if (!response.ok) {
      docTitle.textContent = "Document unavailable";
      showError(await errorMessage(response));
      return;
    }
    const doc = await response.json();
    if (request !== docRequest) return;
    renderDocument(doc, start, end, hs, he);
  }

  function renderDocument(doc, start, end, hs, he) {
    docTitle.textContent = doc.title || doc.doc_id;
    document.title = `${doc.title || doc.doc_id} · Ask the corpus`;
    const slice = slicer(doc.text);
    const length = Array.from(doc.text).length;
    const hasPassage = Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end > start && end <= length;
    docMeta.textContent = hasPassage
      ? `${doc.doc_id} · passage at characters ${start}–${end} of ${length}`
      : `${doc.doc_id} · ${length} characters`;
    if (!hasPassage) {
      docText.textContent = doc.text;
      docTitle.focus();
      return;
    }
    const passage = el("mark", "passage");
    passage.id = "doc-passage";
    if (Number.isInteger(hs) && Number.isInteger(he) && he > hs) {
      appendMarked(passage, slice, start, end, hs, he, "sentence");
    } else {
      passage.textContent = slice(start, end);
    }
    docText.replaceChildren(document.createTextNode(slice(0, start)), passage, document.createTextNode(slice(end, length)));
    docTitle.focus({ preventScroll: true });
    passage.scrollIntoView({ block: "center" });
    setStatus(`Opened ${doc.title || doc.doc_id} at the passage, characters ${start}–${end}.`);
  }

  function route() {
    const hash = location.hash.slice(1);
    const params = new URLSearchParams(hash);
    if (params.get("doc")) {
      showDocument(params);
    } else {
      docRequest++;
      showResults(true);
    }
  }

  form.addEventListener("submit", ask);
  window.addEventListener("hashchange", route);
  $("back").addEventListener("click", (event) => {
    event.preventDefault();
    if (history.length > 1 && lastLink) history.back();
    else {
      history.pushState(null, "", location.pathname + location.search);
      route();
    }
  });
  $("home").addEventListener("click", (event) => {
    event.preventDefault();
    history.pushState(null, "", location.pathname + location.search);
    route();
    input.focus();
  });
  route();
})();
