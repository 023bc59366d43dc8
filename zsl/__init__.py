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
from zsl.offline import apply_network_defaults
from zsl.version import __version__
from zsl.vocab import LabelVocab

apply_network_defaults()  # before any zsl module imports LiteLLM, DSPy or the hub libraries (see zsl.offline)

_LAZY = {
    "Tagger": "zsl.tagger",
    "ImageTagger": "zsl.image",
    "StudentClassifier": "zsl.distill",
    "Scorer": "zsl.base",
    "LabelSettings": "zsl.labeller",
    "label_run": "zsl.run",
    "budget_run": "zsl.budget",
    "get_lm": "zsl.lm",
    "get_encoder": "zsl.encoders",
    "VocabIndex": "zsl.index",
    "list_models": "zsl.models",
    "metrics": "zsl.metrics",
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
    from zsl import metrics
    from zsl.base import Scorer
    from zsl.budget import budget_run
    from zsl.distill import StudentClassifier
    from zsl.encoders import get_encoder
    from zsl.image import ImageTagger
    from zsl.index import VocabIndex
    from zsl.labeller import LabelSettings
    from zsl.lm import get_lm
    from zsl.models import list_models
    from zsl.run import label_run
    from zsl.tagger import Tagger


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'zsl' has no attribute '{name}'")
    mod = import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value
