"""The learned ranker: LightGBM ``lambdarank`` trees that re-order the fused top passages.

``qa train-ranker`` trains it on dev questions (the candidates of each
question, relevance = the passage holds the gold span) and writes LightGBM's
model text format plus a .json saying what it was trained from, per encoder,
in ``index/rerank/rankers/``. A search scores only the fused top ``rerank_depth``
rows with it (``SearchParams``; ``index.rerank.candidates``), so its cost does not grow with the index.

Why a query-time setting (``QA_RANKER``) and not a build setting: every
feature is computed at query time from what any index of this format stores
(list scores, stored vectors, BM25 postings, hubness), so a new ranker never
makes a stored file wrong, and ``QA_RANKER=off`` or another ranker file works
on the same index. The index settings the ranker was trained under (and the
question reference, whose digest the build records) are kept in its .json;
an index built otherwise still gets a valid, if less well fitted, ranking,
just as the hand-set fusion weights are query-time settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from index.errors import IndexMismatchError, ModelUnavailableError
from index.rerank.features import FEATURES
from index.storage.files import replace_text

if TYPE_CHECKING:
    import lightgbm as lgb

# lightgbm is imported where a ranker is trained or loaded: with sklearn and scipy it takes most of a second,
# and the ranker is off by default.
RANKERS_DIR = Path(__file__).parent / "rankers"  # the rankers shipped with the package, per model
TRAINING = {
    "objective": "lambdarank",
    "metric": "ndcg",
    "eval_at": [1, 5],
    "lambdarank_truncation_level": 10,
    "num_leaves": 7,
    "min_data_in_leaf": 50,
    "learning_rate": 0.05,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "seed": 1,
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "verbose": -1,
}
ROUNDS = 150


@dataclass(frozen=True)
class RankerInfo:
    """What a ranker was trained from, kept beside its model text as JSON."""

    model: str
    features: list[str]
    depth: int
    rounds: int
    questions: int
    sources: list[str]
    settings: dict = field(default_factory=dict)  # index and search settings the features were computed with


@dataclass(frozen=True)
class Ranker:
    """A LightGBM model text and its info; ``score`` rates the rows of a feature matrix."""

    text: str
    info: RankerInfo

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:16]

    def score(self, features: np.ndarray) -> np.ndarray:
        """Higher is better; one thread, since a question's few dozen rows take well under a millisecond."""
        return np.asarray(_booster(self.text).predict(features, num_threads=1), dtype=np.float64)

    def save(self, path: Path) -> None:
        """Write ``path`` (.txt) and its .json beside it, each replaced atomically."""
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_text(path, self.text)
        replace_text(path.with_suffix(".json"), json.dumps(asdict(self.info), ensure_ascii=False, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Ranker:
        import lightgbm as lgb

        try:
            text = path.read_text(encoding="utf-8")
            info = RankerInfo(**json.loads(path.with_suffix(".json").read_text(encoding="utf-8")))
            _booster(text)
        except (OSError, ValueError, TypeError, lgb.basic.LightGBMError) as exc:
            message = f"ranker {path} is unreadable ({exc}): make it again with `qa train-ranker`"
            raise ModelUnavailableError(message) from exc
        if info.features != list(FEATURES):
            raise IndexMismatchError(
                f"ranker {path} was trained on other features than this version computes: "
                "make it again with `qa train-ranker`, or set QA_RANKER=off"
            )
        return cls(text, info)


def train(features: np.ndarray, relevance: np.ndarray, groups: list[int], rounds: int = ROUNDS) -> str:
    """LightGBM model text of a lambdarank model; the same input gives the same text."""
    import lightgbm as lgb

    dataset = lgb.Dataset(features, relevance, group=groups, feature_name=list(FEATURES), free_raw_data=False)
    return lgb.train(dict(TRAINING), dataset, num_boost_round=rounds).model_to_string()


def shipped_ranker(model: str) -> Path:
    """Where the package keeps (or ``qa train-ranker`` writes) the ranker of a canonical model name."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model)
    return RANKERS_DIR / f"{safe}.txt"


def load_ranker(setting: str, model: str) -> Ranker | None:
    """The ranker ``setting`` names: ``off`` for none, ``on`` for the shipped one of ``model`` (none if it has
    none), else a path to a ranker file."""
    if setting == "off":
        return None
    path = shipped_ranker(model) if setting == "on" else Path(setting)
    if setting == "on" and not path.is_file():
        return None
    if not path.is_file():
        raise ModelUnavailableError(f"ranker {path} does not exist: make it with `qa train-ranker`")
    ranker = _load_cached(str(path.resolve()), path.stat().st_mtime_ns)
    if ranker.info.model != model:
        raise IndexMismatchError(
            f"ranker {path} was trained for {ranker.info.model!r}, not {model!r}: "
            "make one for this model with `qa train-ranker`, or set QA_RANKER=off"
        )
    return ranker


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime: int) -> Ranker:
    return Ranker.load(Path(path))


@lru_cache(maxsize=8)
def _booster(text: str) -> lgb.Booster:
    import lightgbm as lgb

    return lgb.Booster(model_str=text)
