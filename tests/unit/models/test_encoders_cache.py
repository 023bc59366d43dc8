import numpy as np
import pytest

from zsl.errors import InputError
from zsl.models.encoders import HashingEncoder, encode_cached, get_encoder
from zsl.util.cache import EmbeddingCache, content_hash


class CountingEncoder(HashingEncoder):
    def __init__(self):
        super().__init__(dim=32)
        self.calls = 0

    def encode(self, texts, **kw):
        self.calls += 1
        return super().encode(texts, **kw)


def test_hashing_encoder_is_normalised_and_lexical():
    enc = HashingEncoder(dim=128)
    e = enc.encode(["red apple pie", "apple pie red", "quantum chromodynamics"])
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    assert e[0] @ e[1] > 0.99 and e[0] @ e[2] < 0.5


def test_encode_rejects_a_single_string_and_non_strings():
    enc = HashingEncoder()
    with pytest.raises(InputError, match="wrap it"):
        enc.encode("text")
    with pytest.raises(InputError, match="item 1"):
        enc.encode(["ok", None])


def test_embedding_cache_hits_on_same_content_only():
    enc = CountingEncoder()
    a = encode_cached(enc, ["x", "y, z"])
    b = encode_cached(enc, ["x", "y, z"])
    assert enc.calls == 1
    np.testing.assert_allclose(a, b)
    encode_cached(enc, ["x", "y", "z"])  # same characters, different labels -> new key
    assert enc.calls == 2


def test_cache_key_includes_model_id():
    c = EmbeddingCache()
    assert c.key("m1", ["a"]) != c.key("m2", ["a"])
    assert content_hash(["ab", "c"]) != content_hash(["a", "bc"])


def test_corrupt_cache_file_is_a_miss():
    c = EmbeddingCache()
    k = c.key("m", ["a"])
    c.path(k).write_bytes(b"not numpy")
    assert c.get(k) is None


def test_get_encoder_resolution(monkeypatch):
    assert isinstance(get_encoder("hashing"), HashingEncoder)
    monkeypatch.setenv("ZSL_ENCODER", "hashing")
    assert isinstance(get_encoder(), HashingEncoder)
    enc = HashingEncoder()
    assert get_encoder(enc) is enc
    with pytest.raises(InputError):
        get_encoder(42)
