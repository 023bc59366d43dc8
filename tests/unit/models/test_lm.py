import pytest

from zsl.errors import ModelNotFoundError, RemoteModelError
from zsl.models.lm import check_lm, get_lm, is_remote, resolve_lm_name


def test_resolution_order():
    assert resolve_lm_name("gemma3-270m", env={"ZSL_LM": "x/y"}) == "gemma3-270m"
    assert resolve_lm_name(None, env={"ZSL_LM": "openai/gpt-4o-mini"}) == "openai/gpt-4o-mini"
    assert resolve_lm_name(None, env={}) == "qwen2.5-coder-1.5b"


def test_remote_detection(tmp_path):
    assert is_remote("openai/gpt-4o-mini")
    assert is_remote("ollama_chat/qwen2.5")
    assert not is_remote("qwen2.5-coder-1.5b")
    assert not is_remote(str(tmp_path / "model.gguf"))


def test_unknown_lm_name_is_a_clear_error():
    with pytest.raises(ModelNotFoundError) as err:
        get_lm("not-a-model")
    msg = str(err.value)
    assert "qwen2.5-coder-1.5b" in msg and "openai/gpt-4o-mini" in msg


def test_encoder_name_is_not_an_lm():
    with pytest.raises(ModelNotFoundError, match="encoder"):
        get_lm("minilm-l6")


def test_missing_gguf_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="No GGUF file"):
        get_lm(str(tmp_path / "absent.gguf"))


def test_provider_model_is_built_without_network():
    import dspy

    lm = get_lm("openai/gpt-4o-mini", api_key="test")
    assert isinstance(lm, dspy.BaseLM) and lm.model == "openai/gpt-4o-mini"


def test_unreachable_remote_endpoint_gives_one_clear_error():
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    lm = get_lm("openai/some-model", api_base="http://127.0.0.1:9/v1", api_key="x", num_retries=0)
    with pytest.raises(RemoteModelError) as err:
        check_lm(lm, "openai/some-model")
    msg = str(err.value)
    assert "openai/some-model" in msg and "api_base" in msg and "--lm qwen2.5-coder-1.5b" in msg


def test_local_engine_counts_answers_cut_at_max_tokens_instead_of_warning():
    import logging

    import dspy

    from zsl.models.lm import LlamaCppEngine

    class FakeRuntime:  # what the llama.cpp runtime returns: text, finish reason, token counts
        finish = "length"

        def complete(self, messages, *, max_tokens, temperature, stop, prefill=""):
            return "phrase one\nphrase tw", self.finish, 12, max_tokens

    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    logger = logging.getLogger("dspy.clients.lm")  # DSPy's logger does not propagate to pytest's caplog
    logger.addHandler(handler)
    try:
        runtime = FakeRuntime()
        engine = LlamaCppEngine(runtime, "local/fake")
        lm = dspy.LM("local/fake", model_type="chat", max_tokens=4, cache=False, num_retries=0, engine=engine)
        assert lm("hello") == ["phrase one\nphrase tw"]  # the real DSPy call path
        runtime.finish = "stop"
        lm("hello again")
        assert engine.truncated == 1 and LlamaCppEngine.truncated == 0
        assert not [m for m in seen if "truncated" in m]
        logger.warning("LM response was truncated; increase max_tokens or inspect history.")  # e.g. a remote LM
        assert any("truncated" in m for m in seen)  # only the local engine's own answers are silenced
    finally:
        logger.removeHandler(handler)


def _infer_messages(extra: str = "") -> list[dict[str, str]]:
    return [{"role": "system", "content": "Your input fields are: ..."},
            {"role": "user", "content": "[[ ## text ## ]]\nI love it\n\nRespond with the corresponding output fields, "
                                        f"starting with the field `[[ ## phrases ## ]]`{extra}, and then ending with "
                                        "the marker for `[[ ## completed ## ]]`."}]


def test_answer_field_recognises_only_one_field_chat_adapter_requests():
    from zsl.models.lm import answer_field

    assert answer_field(_infer_messages()) == "phrases"
    assert answer_field(_infer_messages(" (must be formatted as a valid Python list[str])")) is None  # typed
    two = _infer_messages(", then `[[ ## score ## ]]`")  # two output fields: left alone
    assert answer_field(two) is None
    assert answer_field([{"role": "user", "content": "Name one fruit."}]) is None
    assert answer_field([*_infer_messages(), {"role": "assistant", "content": "x"}]) is None
    assert answer_field([]) is None


def test_local_engine_prefills_the_field_marker_and_stops_at_the_next_one():
    import dspy

    from zsl.models.lm import FIELD_END, LlamaCppEngine

    seen: dict = {}

    class FakeRuntime:
        finish = "stop"

        def complete(self, messages, *, max_tokens, temperature, stop, prefill=""):
            seen.update(prefill=prefill, stop=tuple(stop))
            return "joy\ngratitude\n\n", self.finish, 30, 5

    class Sig(dspy.Signature):
        """Write the emotions."""

        text: str = dspy.InputField()
        phrases: str = dspy.OutputField()

    runtime = FakeRuntime()
    lm = dspy.LM("local/fake", model_type="chat", cache=False, num_retries=0, engine=LlamaCppEngine(runtime, "local/fake"))
    with dspy.context(lm=lm, adapter=dspy.ChatAdapter()):
        got = dspy.Predict(Sig)(text="Thanks, I love it")
    assert got.phrases == "joy\ngratitude"  # parsed as if the model had written both markers
    assert seen["prefill"] == "[[ ## phrases ## ]]\n" and set(FIELD_END) <= set(seen["stop"])
    assert lm.history[-1]["outputs"][0] == "[[ ## phrases ## ]]\njoy\ngratitude\n\n[[ ## completed ## ]]"
    seen.clear()
    assert lm("Name one fruit.") == ["joy\ngratitude\n\n"]  # a plain prompt: no prefill, no extra stops
    assert seen == {"prefill": "", "stop": ()}
