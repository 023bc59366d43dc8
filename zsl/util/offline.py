"""zsl reaches the network only for what the user named.

* A remote LM (``--lm openai/...``, ``hosted_vllm/...`` with ``--api-base``) is called because
  the user asked for it, and nothing else is fetched on the way: LiteLLM and DSPy read their
  model price tables from the copy bundled with them (``LITELLM_LOCAL_MODEL_COST_MAP=True``)
  instead of downloading them when first imported or first used.
* The Hugging Face hub is never contacted unless downloads are allowed explicitly with
  ``ZSL_ALLOW_DOWNLOADS=1`` (set before Python starts). Otherwise the hub libraries run in
  offline mode (``HF_HUB_OFFLINE=1``) and an encoder name that is neither embedded nor a
  local folder fails at once instead of being looked up on the hub.

:func:`apply_network_defaults` runs when ``zsl`` is imported, before any zsl module can import
LiteLLM, DSPy or the hub libraries. It only sets variables the user has not set.

Example:
    >>> downloads_allowed({"ZSL_ALLOW_DOWNLOADS": "1"}), downloads_allowed({})
    (True, False)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

__all__ = ["ALLOW_DOWNLOADS", "apply_network_defaults", "downloads_allowed"]

ALLOW_DOWNLOADS = "ZSL_ALLOW_DOWNLOADS"


def downloads_allowed(env: Mapping[str, str] | None = None) -> bool:
    """True when the user allowed downloads from the Hugging Face hub (``ZSL_ALLOW_DOWNLOADS=1``)."""
    env = os.environ if env is None else env
    return env.get(ALLOW_DOWNLOADS, "").strip().lower() in {"1", "true", "yes", "on"}


def apply_network_defaults(env: MutableMapping[str, str] | None = None) -> None:
    """Set the offline defaults described above, keeping any value the user set."""
    env = os.environ if env is None else env
    # LiteLLM fetches its price table at import unless told otherwise; DSPy's model metadata
    # (used for pricing) honours the same variable.
    env.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    if not downloads_allowed(env):
        # Read by huggingface_hub / transformers / datasets when they are imported.
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TRANSFORMERS_OFFLINE", "1")
        env.setdefault("HF_DATASETS_OFFLINE", "1")
