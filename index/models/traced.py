"""A faster query path for sentence-transformers models: the transformer frozen with TorchScript.

A question is encoded one at a time, where eager PyTorch spends much of its
time dispatching small operators; a traced and frozen graph fuses them. The
pooling and normalisation modules still run as the model defines them. The
path is checked against the eager model at load time and is simply not used
when tracing fails or the outputs differ, so a model it cannot handle stays
correct, only slower.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

log = logging.getLogger(__name__)

PROBES = (
    "Who mediated the talks?",
    "Quel jour les délégations iranienne et américaine se sont-elles réunies à Mascate ?",
    "¿Cuál es la población de la ciudad más grande del país según el censo de 2010 y cuántos barrios tiene?",
)
TOLERANCE = 1e-4  # largest difference allowed against the eager model, per vector component


class TracedQueryEncoder:
    """Encodes one text at a time through a frozen TorchScript copy of the model's transformer."""

    def __init__(self, model, graph, input_names: tuple[str, ...]) -> None:
        self._model = model
        self._graph = graph
        self._inputs = input_names
        self._after = list(model)[1:]  # pooling, normalisation: run as the model defines them

    @classmethod
    def build(cls, model) -> TracedQueryEncoder | None:
        """The traced path for ``model``, or None when it cannot be traced faithfully."""
        import torch

        modules = list(model)
        if not modules or type(modules[0]).__name__ != "Transformer" or not hasattr(modules[0], "auto_model"):
            return None
        try:
            features = model.preprocess([PROBES[0]])
            names = tuple(k for k, v in features.items() if isinstance(v, torch.Tensor))
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer warnings about shape-dependent Python code
                traced = torch.jit.trace(
                    modules[0].auto_model.eval(),
                    example_kwarg_inputs={name: features[name] for name in names},
                    strict=False,
                )
                graph = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
            candidate = cls(model, graph, names)
            if not candidate._matches_eager():
                log.info("traced query path differs from the eager model: not used")
                return None
            return candidate
        except Exception as exc:  # tracing support varies by architecture
            log.info("traced query path unavailable (%s): using the eager model", type(exc).__name__)
            return None

    def encode(self, text: str) -> np.ndarray:
        """The sentence embedding of one text, as the model's own pipeline would give it."""
        import torch

        features = self._model.preprocess([text])
        with torch.inference_mode():
            output = self._graph(**{name: features[name] for name in self._inputs})
            features["token_embeddings"] = output["last_hidden_state"] if isinstance(output, dict) else output[0]
            for module in self._after:
                features = module(features)
        return features["sentence_embedding"].float().numpy()[0]

    def _matches_eager(self) -> bool:
        # encode_query: a model with a query prompt (E5 and the like) differs here and keeps the eager path
        eager = self._model.encode_query(list(PROBES), convert_to_numpy=True, show_progress_bar=False)
        traced = np.stack([self.encode(text) for text in PROBES])
        return traced.shape == eager.shape and float(np.abs(traced - eager).max()) <= TOLERANCE
