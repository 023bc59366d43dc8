"""Integration test on the real mpnet encoder (all-mpnet-base-v2), assembled from its five
part packages into $ZSL_HOME on first use (about 440 MB)."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def test_mpnet_encodes_768d_unit_vectors_and_ranks_a_paraphrase_first():
    from zsl.models.encoders import SentenceTransformerEncoder, get_encoder

    enc = get_encoder("mpnet")
    assert isinstance(enc, SentenceTransformerEncoder) and enc.device == "cpu"
    pair = enc.encode(["The cat sat on the mat.", "A kitten was sitting on the rug."])
    assert pair.shape == (2, 768) and pair.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pair, axis=1), 1.0, atol=1e-5)
    unrelated = enc.encode(["Quarterly revenue grew by eight percent."])[0]
    assert pair[0] @ pair[1] > pair[0] @ unrelated + 0.3
