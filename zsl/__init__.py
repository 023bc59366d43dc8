"""zsl: label data without annotations.

``import zsl`` is light (numpy only). Heavy parts -- torch, transformers, faiss, open_clip,
llama.cpp, litellm, dspy -- load on first use. The three scorers (``Tagger``, ``ImageTagger``,
``StudentClassifier``, one :class:`~zsl.base.Scorer` contract) and ``label_run`` (with its
``LabelSettings``) are here, imported when first used.

Example:
    >>> import zsl
    >>> vocab = zsl.LabelVocab(["sports", "politics", "science"])
    >>> len(vocab)
    3
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from zsl.errors import (
    InputError,
    MissingDependencyError,
    ModelIntegrityError,
    ModelNotFoundError,
    RemoteModelError,
    VocabularyError,
    ZslError,
)
from zsl.util.offline import apply_network_defaults
from zsl.version import __version__
from zsl.vocab import LabelVocab

apply_network_defaults()  # before any zsl module imports LiteLLM, DSPy or the hub libraries (see zsl.util.offline)

_LAZY = {
    "Tagger": "zsl.text.tagger",
    "ImageTagger": "zsl.image.tagger",
    "StudentClassifier": "zsl.student.classifier",
    "Scorer": "zsl.base",
    "LabelSettings": "zsl.runs.labeller",
    "label_run": "zsl.runs.label",
    "budget_run": "zsl.runs.budget",
    "get_lm": "zsl.models.lm",
    "get_encoder": "zsl.models.encoders",
    "VocabIndex": "zsl.index",
    "list_models": "zsl.models.registry",
    "metrics": "zsl.evaluation.metrics",
}

__all__ = [
    "ImageTagger",
    "InputError",
    "LabelSettings",
    "LabelVocab",
    "MissingDependencyError",
    "ModelIntegrityError",
    "ModelNotFoundError",
    "RemoteModelError",
    "Scorer",
    "StudentClassifier",
    "Tagger",
    "VocabIndex",
    "VocabularyError",
    "ZslError",
    "__version__",
    "budget_run",
    "get_encoder",
    "get_lm",
    "label_run",
    "list_models",
    "metrics",
]

if TYPE_CHECKING:
    from zsl.base import Scorer
    from zsl.evaluation import metrics
    from zsl.image.tagger import ImageTagger
    from zsl.index import VocabIndex
    from zsl.models.encoders import get_encoder
    from zsl.models.lm import get_lm
    from zsl.models.registry import list_models
    from zsl.runs.budget import budget_run
    from zsl.runs.label import label_run
    from zsl.runs.labeller import LabelSettings
    from zsl.student.classifier import StudentClassifier
    from zsl.text.tagger import Tagger


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zsl' has no attribute '{name}'")
    mod = import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value
