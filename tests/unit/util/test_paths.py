"""$ZSL_HOME is private (0700) whatever the umask, and DSPy's pickle LM cache is read in restricted mode."""

from __future__ import annotations

import os

from tests.fake_openai import FakeOpenAI


def test_zsl_home_and_its_folders_are_private_whatever_the_umask(tmp_path, monkeypatch):
    from zsl.util.paths import subdir, zsl_home

    monkeypatch.setenv("ZSL_HOME", str(tmp_path / "new" / "zsl"))
    old = os.umask(0o022)
    try:
        home = zsl_home()
        sub = subdir("dspy")
    finally:
        os.umask(old)
    for path in (tmp_path / "new", home, sub):
        assert path.stat().st_mode & 0o777 == 0o700, (path, oct(path.stat().st_mode))


class Planted:
    """A type outside DSPy's pickle allowlist (a planted cache entry could run code when loaded)."""


def test_the_lm_cache_refuses_unknown_pickled_types_and_still_caches_answers(tmp_path):
    import dspy

    from zsl.util.cache import configure_lm_cache

    configure_lm_cache(True)
    request = {"model": "x", "messages": [{"role": "user", "content": "planted"}]}
    dspy.cache.put(request, Planted())
    dspy.cache.reset_memory_cache()
    assert dspy.cache.get(request) is None  # refused by the restricted unpickler: a miss

    with FakeOpenAI() as server:
        lm = dspy.LM("hosted_vllm/x", api_base=server.api_base, num_retries=0)  # cache on
        assert lm("hello") == ["ok"]
        dspy.cache.reset_memory_cache()
        assert lm("hello") == ["ok"] and server.requests == 1  # the second answer came from the disk cache
