"""Examples as evidence (zsl.student.heads) and Tagger.fit learning from them: fake encoder, no LLM."""

from __future__ import annotations

import numpy as np
import pytest

from zsl import LabelVocab, Tagger
from zsl.errors import InputError
from zsl.models.encoders import HashingEncoder
from zsl.scoring import FITTED_GAP_K
from zsl.student.heads import (
    LAMBDAS,
    AnchoredHead,
    ExampleEvidence,
    evidence_from_dict,
    fit_thresholds,
    make_evidence,
    thresholds_from_dict,
    thresholds_to_dict,
)


def _clusters(n_per: int, n_labels: int, seed: int = 0, d: int = 16, noise: float = 0.3):
    """Examples around one random direction per label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_labels, d))
    emb, y = [], []
    for j in range(n_labels):
        for _ in range(n_per):
            emb.append(centres[j] + noise * rng.normal(size=d))
            row = np.zeros(n_labels)
            row[j] = 1
            y.append(row)
    return np.array(emb), np.array(y), centres


@pytest.mark.parametrize("method", ["head", "knn", "prototype"])
def test_examples_help_when_label_names_do_not(method):
    emb, y, _ = _clusters(6, 4)
    zero = np.random.default_rng(1).normal(scale=0.01, size=y.shape)  # uninformative zero-shot scores
    ev = make_evidence(method).fit(emb, y, zero)
    if method != "head":
        assert ev.alpha_ > 0  # cross-validation found the examples useful
    q, yq, _ = _clusters(3, 4, seed=0)  # same centres, new noise
    s = ev.fuse(np.zeros_like(yq), q + 0.1)
    assert (s.argmax(axis=1) == yq.argmax(axis=1)).mean() >= 0.9


def test_examples_are_ignored_when_they_only_add_noise():
    emb, y, _ = _clusters(6, 4)
    rng = np.random.default_rng(3)
    y_random = y[rng.permutation(len(y))]  # labels unrelated to the embeddings
    zero = y_random * 1.0  # the zero-shot scores are already perfect
    ev = ExampleEvidence("knn").fit(emb, y_random, zero)
    assert ev.alpha_ == 0.0
    assert np.array_equal(ev.fuse(zero, emb), zero.astype(np.float32))


def test_labels_without_examples_keep_their_zero_shot_scores_exactly():
    emb, y, _ = _clusters(4, 3)
    y = np.hstack([y, np.zeros((len(y), 2))])  # labels 3 and 4 have no example
    zero = np.random.default_rng(2).random(y.shape)
    ev = ExampleEvidence("knn", alpha=2.0, kappa=1.0).fit(emb, y, zero)
    q = np.random.default_rng(4).normal(size=(5, emb.shape[1]))
    z = np.random.default_rng(5).random((5, 5)).astype(np.float32)
    s = ev.fuse(z, q)
    assert np.array_equal(s[:, 3:], z[:, 3:])
    assert not np.allclose(s[:, :3], z[:, :3])


def test_head_calibrates_labels_without_examples_and_keeps_their_ranking():
    from scipy.special import expit

    emb, y, _ = _clusters(5, 3)
    y = np.hstack([y, np.zeros((len(y), 1))])  # label 3 has no example
    rng = np.random.default_rng(8)
    zero = y * 0.3 + rng.normal(scale=0.05, size=y.shape)  # zero-shot scores that carry some signal
    head = AnchoredHead().fit(emb, y, zero)
    assert head.lam_ in LAMBDAS and [r["lam"] for r in head.cv_table_] == sorted(LAMBDAS, reverse=True)
    assert head.a_ > 0 and head.labels_.tolist() == [0, 1, 2]
    z = rng.random((6, 4)).astype(np.float32)
    p = head.fuse(z, rng.normal(size=(6, emb.shape[1])))
    np.testing.assert_allclose(p[:, 3], expit(head.a_ * z[:, 3].astype(np.float64) + head.c_), rtol=1e-5)
    assert (np.diff(p[np.argsort(z[:, 3]), 3]) >= 0).all()  # the zero-shot ranking, kept
    again = evidence_from_dict(head.to_dict())
    assert np.array_equal(again.fuse(z, emb[:6]), head.fuse(z, emb[:6]))
    with pytest.raises(InputError, match="lam"):
        AnchoredHead(lam=0).fit(emb, y, zero)
    with pytest.raises(InputError, match="not fitted"):
        AnchoredHead().fuse(z, emb[:6])
    with pytest.raises(InputError, match="evidence must be"):
        make_evidence("svm")


def test_head_learns_soft_targets_and_refuses_them_without_a_penalty():
    emb, y, centres = _clusters(6, 3, seed=4)
    zero = np.zeros_like(y)
    hard = AnchoredHead(lam=1e-2).fit(emb, y, zero)
    same = AnchoredHead(lam=1e-2).fit(emb, y.astype(np.float32), zero, soft=True)
    np.testing.assert_allclose(same.fuse(zero[:3], centres), hard.fuse(zero[:3], centres), atol=1e-6)
    soft = 0.6 * y + 0.4 * y[:, [1, 2, 0]]  # each cluster: 60% its own label, 40% the one before
    head = AnchoredHead(lam=1e-2).fit(emb, soft, zero, soft=True)
    p, q = head.fuse(zero[:3], centres), hard.fuse(zero[:3], centres)
    assert (p.argmax(axis=1) == [0, 1, 2]).all()
    assert all(p[j, (j + 2) % 3] > q[j, (j + 2) % 3] + 0.2 for j in range(3))  # the second label is learnt
    assert head.counts_.tolist() == [6, 6, 6]
    with pytest.raises(InputError, match="soft targets need a fixed penalty"):
        AnchoredHead().fit(emb, soft, zero, soft=True)
    with pytest.raises(InputError, match=r"must lie in \[0, 1\]"):
        AnchoredHead(lam=1e-2).fit(emb, soft * 3, zero, soft=True)


def test_weight_grows_with_the_number_of_examples():
    ev = ExampleEvidence("prototype", alpha=1.0, kappa=4.0)
    w = ev._weights(np.array([0, 1, 4, 16]), 1.0, 4.0)
    assert w[0] == 0 and w[1] < w[2] < w[3] < 1.0


def test_one_example_cannot_be_cross_validated_and_still_fits():
    ev = ExampleEvidence("knn").fit(np.ones((1, 4)), np.array([[1, 0]]), np.zeros((1, 2)))
    assert ev.oof_scores_ is None and ev.cv_table_ == []
    assert ev.fuse(np.zeros((1, 2)), np.ones((1, 4))).shape == (1, 2)


def test_save_and_load_give_identical_outputs():
    emb, y, _ = _clusters(5, 3)
    ev = ExampleEvidence("knn").fit(emb, y, np.zeros_like(y))
    again = ExampleEvidence.from_dict(ev.to_dict())
    q = np.random.default_rng(7).normal(size=(4, emb.shape[1]))
    assert np.array_equal(again.fuse(np.zeros((4, 3)), q), ev.fuse(np.zeros((4, 3)), q))
    rule = fit_thresholds(ev.oof_scores_, y)
    assert np.array_equal(thresholds_from_dict(thresholds_to_dict(rule)).predict(ev.oof_scores_),
                          rule.predict(ev.oof_scores_))


def test_bad_input_to_the_estimator():
    with pytest.raises(InputError, match="method"):
        ExampleEvidence("svm").fit(np.ones((2, 3)), np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(InputError, match="emb \\(n, d\\)"):
        ExampleEvidence().fit(np.ones((3, 3)), np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(InputError, match="not fitted"):
        ExampleEvidence().evidence(np.ones((1, 3)))
    ev = ExampleEvidence().fit(np.ones((2, 3)), np.eye(2), np.zeros((2, 2)))
    with pytest.raises(InputError, match="encoder"):
        ev.evidence(np.ones((1, 5)))


# -- Tagger.fit --------------------------------------------------------------------------------------
# Label names that say nothing about the texts: only the examples can tell the tagger what they mean.
LABELS = ["label one", "label two", "label three"]
TRAIN = [("goal striker match football", ["label one"]), ("football match referee goal", ["label one"]),
         ("oven bake flour bread", ["label two"]), ("bread dough oven yeast", ["label two"]),
         ("rain cloud storm forecast", ["label three"]), ("storm wind rain forecast", ["label three"])]
TEST = ["the striker scored a goal in the match", "knead the dough and bake the bread",
        "heavy rain and storm in the forecast"]


def _tagger(**kw):
    return Tagger(LabelVocab(LABELS), encoder=HashingEncoder(512), infer=False, rank=False, **kw)


def test_fit_learns_from_examples_and_predicts_label_sets(tmp_path):
    zero = _tagger()
    assert zero.predict(TEST).sum(axis=1).tolist() == [3, 3, 3]  # before fit: top-5 of 3 labels
    tagger = _tagger().fit(TRAIN)
    assert tagger.evidence_ is not None and tagger.thresholds_ is not None
    sets = tagger.predict(TEST)
    assert sets.dtype == np.uint8 and sets.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
    assert tagger.predict(TEST, k=2).sum(axis=1).tolist() == [2, 2, 2]  # k still asks for top-k
    assert tagger.config()["examples"]["n_examples"] == 6
    # the saved tagger reloads with identical outputs
    path = tagger.save(tmp_path / "t.json")
    again = _tagger().load(path)
    np.testing.assert_array_equal(again.predict_proba(TEST), tagger.predict_proba(TEST))
    np.testing.assert_array_equal(again.predict(TEST), tagger.predict(TEST))
    # a file fitted on one vocabulary is refused by a tagger over another
    other = Tagger(LabelVocab(["a", "b", "c"]), encoder=HashingEncoder(512), infer=False, rank=False)
    with pytest.raises(InputError, match="another vocabulary"):
        other.load(path)


def test_loading_examples_fitted_with_another_encoder_warns_and_names_it(tmp_path, recwarn):
    """A fine-tuned encoder has the base model's dimension: evidence from one read in the other's space
    would be silently wrong, so the saved file names its encoder."""

    class Renamed(HashingEncoder):
        def __init__(self, dim: int):
            super().__init__(dim)
            self.model_id = "st:/models/fine-tuned:abc:norm=True"

    path = _tagger().fit(TRAIN).save(tmp_path / "t.json")
    _tagger().load(path)
    assert not [w for w in recwarn if "fitted with the encoder" in str(w.message)]
    other = Tagger(LabelVocab(LABELS), encoder=Renamed(512), infer=False, rank=False)
    with pytest.warns(UserWarning, match=r"fitted with the encoder hash.*uses st:/models/fine-tuned"):
        other.load(path)


def test_fit_without_evidence_keeps_zero_shot_scores_but_calibrates_thresholds():
    tagger = _tagger(evidence=None).fit(TRAIN)
    np.testing.assert_array_equal(tagger.score(TEST), _tagger().score(TEST))
    assert tagger.thresholds_ is not None and tagger.predict(TEST).sum(axis=1).min() >= 1


def test_examples_with_unknown_labels_are_listed_or_skipped():
    bad = TRAIN + [("something", ["label four"]), ("else", ["label one", "nope"])]
    with pytest.raises(InputError, match="2 example label\\(s\\) are not in the vocabulary: 'label four' "
                                         "\\(example 6\\), 'nope' \\(example 7\\)"):
        _tagger().fit(bad)
    tagger = _tagger().fit(bad, unknown_labels="skip")
    assert any("dropped 2 label(s)" in n for n in tagger.fit_notes_)
    assert tagger.evidence_.n_examples_ == 7  # 'something' lost its only label; 'else' kept 'label one'
    with pytest.raises(InputError, match="unknown_labels"):
        _tagger().fit(TRAIN, unknown_labels="ignore")


def test_duplicates_single_examples_and_a_one_label_vocabulary():
    tagger = _tagger().fit(TRAIN + [TRAIN[0], (TRAIN[2][0], ["label three"])])
    assert any("merged 2 repeated" in n for n in tagger.fit_notes_)
    assert tagger.evidence_.n_examples_ == 6
    one = _tagger().fit([("rain and storm", ["label three"])])  # one label with a single example
    assert one.predict(TEST).shape == (3, 3)
    solo = Tagger(LabelVocab(["only"]), encoder=HashingEncoder(64), infer=False, rank=False)
    assert solo.fit([("a text", ["only"]), ("another", ["only"])]).predict(["x y"]).tolist() == [[1]]


def test_fit_rejects_empty_input():
    with pytest.raises(InputError, match="at least one labelled example"):
        _tagger().fit([])
    with pytest.raises(InputError, match="non-empty string"):
        _tagger().fit([("  ", ["label one"])])
    with pytest.raises(InputError, match="optimizer"):
        _tagger().fit(TRAIN, optimizer="adam")


# -- dynamic demos: the LLM steps see the labelled examples nearest to the item ----------------------
def test_llm_steps_see_the_nearest_examples_never_the_item_itself(tmp_path):
    import dspy

    from tests.fakes import ScriptedLM

    lm = ScriptedLM([{"phrases": "something"}] * 40, judge=lambda label: 1.0)
    dspy.configure(lm=lm)

    def tagger():
        return Tagger(LabelVocab(LABELS), lm=lm, encoder=HashingEncoder(512), rank_top=3, n_demos=2, demo_chars=25)

    t = tagger().fit(TRAIN)
    assert t.examples_ is not None and len(t.examples_["texts"]) == 6
    # while fitting, each example was scored with two other examples as demos, never itself
    fit_prefixes = [call[0] for call in lm.yesno_calls]
    assert len(fit_prefixes) == 6
    for (text, _), prefix in zip(TRAIN, fit_prefixes):
        demo_part = prefix.split("Examples of texts and their labels:")[1].split("\nText: " + text)[0]
        assert text[:25] not in demo_part and demo_part.count("Text: ") == 2
    lm.yesno_calls.clear()
    n_hist = len(lm.history)
    t.score(["the striker scored a goal in the match"])
    prefix = lm.yesno_calls[0][0]
    # the two football examples are the nearest; texts cut to demo_chars, labels joined
    assert "Text: goal striker match footba\nLabels: label one" in prefix
    assert "Text: football match referee go\nLabels: label one" in prefix
    infer_msgs = " ".join(str(m.get("content")) for h in lm.history[n_hist:] for m in h["messages"])
    assert "goal striker match footba" in infer_msgs  # Infer got them as worked examples too
    # demos travel with the saved tagger; a reloaded one shows the same
    path = t.save(tmp_path / "t.json")
    again = tagger().load(path)
    lm.yesno_calls.clear()
    again.score(["the striker scored a goal in the match"])
    assert lm.yesno_calls[0][0] == prefix
    assert again.config()["examples"]["demos"] == 2
    # n_demos=0: no examples kept, prompts unchanged
    plain = Tagger(LabelVocab(LABELS), lm=lm, encoder=HashingEncoder(512), rank_top=3, n_demos=0).fit(TRAIN)
    lm.yesno_calls.clear()
    plain.score(["the striker scored a goal in the match"])
    assert plain.examples_ is None and "Examples of texts" not in lm.yesno_calls[0][0]


def test_a_run_with_a_fitted_program_takes_its_sets_from_the_thresholds_unless_a_rule_is_given(tmp_path):
    import json

    from zsl import label_run

    tagger = _tagger().fit(TRAIN)
    program = tagger.save(tmp_path / "fitted.json")
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEST), encoding="utf-8")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("\n".join(LABELS) + "\n", encoding="utf-8")
    label_run(items, vocab, out=tmp_path / "run", encoder=HashingEncoder(512), infer=False, rank=False,
              program=program)
    rows = [json.loads(x) for x in (tmp_path / "run" / "labels.jsonl").read_text().splitlines()]
    expected = [{LABELS[j] for j in np.flatnonzero(r)} for r in tagger.predict(TEST)]
    assert [set(r["labels"]) for r in rows] == expected and not any("above_threshold" in r for r in rows)
    assert all(r["scores"] == sorted(r["scores"], reverse=True) for r in rows)
    rule = json.loads((tmp_path / "run" / "manifest.json").read_text())["settings"]["rule"]
    assert rule["name"] == "fitted" and rule["fitted"] and len(rule["thresholds"]) == len(LABELS)
    assert rule["k"] == FITTED_GAP_K  # the thresholds choose within each item's gap set
    # a run of a fitted program written before the gap bound (its record without k) is refused on resume
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    del manifest["settings"]["rule"]["k"]
    (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match=r"chosen by the rule .*fitted.*sets would differ.*--fresh"):
        label_run(items, vocab, out=tmp_path / "run", encoder=HashingEncoder(512), infer=False, rank=False,
                  program=program)
    # an explicit rule (here -k alone: topk) overrides the thresholds, with a warning
    s = label_run(items, vocab, out=tmp_path / "top3", encoder=HashingEncoder(512), infer=False, rank=False,
                  program=program, k=3)
    rows = [json.loads(x) for x in (tmp_path / "top3" / "labels.jsonl").read_text().splitlines()]
    assert all(len(r["labels"]) == 3 for r in rows)
    assert any("overrides the thresholds" in w for w in s.warnings)


def test_fit_scored_learns_from_scores_a_run_already_has_as_fit_learns_from_its_own():
    """fit_scored on the zero-shot scores fit() computes itself gives the same program, without a model call;
    score_from and sets then give what score and predict give."""
    texts = [t for t, _ in TRAIN]
    zero_shot = _tagger().score(texts)
    fitted = _tagger().fit(TRAIN, fusion=False)
    scored = _tagger().fit_scored(TRAIN, zero_shot)
    np.testing.assert_allclose(scored.thresholds_.thresholds_, fitted.thresholds_.thresholds_, atol=1e-6)
    np.testing.assert_allclose(scored.score(TEST), fitted.score(TEST), atol=1e-6)
    np.testing.assert_array_equal(scored.predict(TEST), fitted.predict(TEST))
    np.testing.assert_allclose(scored.score_from(_tagger().score(TEST), TEST), scored.score(TEST), atol=1e-6)
    np.testing.assert_array_equal(scored.sets(scored.score(TEST)), scored.predict(TEST))
    assert scored.sets(scored.score(TEST), k=2).sum(axis=1).tolist() == [2, 2, 2]
    # a repeated example is one example, scored by its first row
    again = _tagger().fit_scored(TRAIN + TRAIN[:1], np.vstack([zero_shot, zero_shot[:1] * 0]))
    np.testing.assert_allclose(again.thresholds_.thresholds_, scored.thresholds_.thresholds_, atol=1e-6)


def test_fit_scored_and_score_from_refuse_scores_of_another_shape_with_the_fix():
    zero_shot = _tagger().score([t for t, _ in TRAIN])
    with pytest.raises(InputError, match=r"one row per example over the 3 labels: expected shape \[6, 3\], got "
                                         r"\[5, 3\].*--top-scores 3"):
        _tagger().fit_scored(TRAIN, zero_shot[:5])
    with pytest.raises(InputError, match=r"scores contain 6 NaN/inf value\(s\); the first is nan at item 0, label column 1"):
        _tagger().fit_scored(TRAIN, np.where(np.arange(3) == 1, np.nan, zero_shot))
    with pytest.raises(InputError, match=r"one row per text over the 3 labels: expected shape \[3, 3\]"):
        _tagger().fit_scored(TRAIN, zero_shot).score_from(zero_shot, TEST)
    with pytest.raises(InputError, match=r"scores has 4 columns but the vocabulary .* has 3 labels"):
        _tagger().sets(np.zeros((2, 4)))
    with pytest.raises(InputError, match="NaN/inf"):
        _tagger().fit_scored(TRAIN, zero_shot).score_from(np.full((3, 3), np.inf), TEST)
    with pytest.raises(InputError, match="k must be >= 1"):
        _tagger().sets(zero_shot, k=0)


def test_score_embedded_equals_score_and_needs_no_llm_step():
    tagger = _tagger().fit(TRAIN)
    emb = tagger.index_.encoder.encode(TEST)
    np.testing.assert_array_equal(tagger.score_embedded(emb), tagger.score(TEST))
    from tests.fakes import ScriptedLM

    with_llm = Tagger(LabelVocab(LABELS), lm=ScriptedLM([]), encoder=HashingEncoder(512), rank=False)
    with pytest.raises(InputError, match="without LLM steps"):
        with_llm.score_embedded(emb)


# -- hostile program files (issue #26, S7, S11): refused at load, before any item is scored ---------------------
def _edited_program(tmp_path, edit, evidence="head"):
    import json

    path = _tagger(evidence=evidence).fit(TRAIN).save(tmp_path / "prog.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")  # NaN is written as JSON's NaN, which Python reads back
    return path


def _nan_array(d):
    from zsl.student.heads import decode_array, encode_array

    a = decode_array(d)
    a.flat[0] = np.nan
    d.update(encode_array(a))


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d["evidence"].update(labels=[0, 1, 99]), r"label indices \[99\] outside the vocabulary's columns 0..2"),
    (lambda d: d["evidence"].update(labels=[0, -1, 2]), r"label indices \[-1\] outside"),
    (lambda d: d["evidence"].update(labels=[0, 1, 1]), r"label indices \[1\] more than once"),
    (lambda d: d["evidence"].update(labels=[0, 1]), r"2 label indices but biases of shape \[3\]"),
    (lambda d: d["evidence"].update(labels=[0, 1.5, 2]), "must be a list of label indices"),
    (lambda d: d["evidence"].update(a=float("nan")), "NaN or infinite values in a"),
    (lambda d: d["evidence"].update(c=float("inf")), "NaN or infinite values in c"),
    (lambda d: _nan_array(d["evidence"]["W"]), "NaN or infinite values in W"),
    (lambda d: _nan_array(d["thresholds"]["thresholds"]), "thresholds must be finite numbers"),
    (lambda d: d["thresholds"].update(temperature=0.0), "positive temperature"),
    (lambda d: d["thresholds"]["params"].update(min_labels="1"), "min_labels must be an integer"),
    (lambda d: d["settings"].update(text_weight=float("nan")), "fusion weights .* hold NaN"),
])
def test_a_damaged_program_is_refused_at_load_naming_the_file(tmp_path, edit, needle):
    path = _edited_program(tmp_path, edit)
    with pytest.raises(InputError, match=needle) as info:
        _tagger().load(path)
    assert str(path) in str(info.value)


def test_program_thresholds_for_another_number_of_labels_are_refused(tmp_path):
    from zsl.student.heads import decode_array, encode_array

    def drop_one(d):
        d["thresholds"]["thresholds"] = encode_array(decode_array(d["thresholds"]["thresholds"])[:2])

    with pytest.raises(InputError, match="thresholds for 2 labels; this vocabulary has 3"):
        _tagger().load(_edited_program(tmp_path, drop_one))


def test_saved_knn_evidence_with_nan_embeddings_is_refused(tmp_path):
    path = _edited_program(tmp_path, lambda d: _nan_array(d["evidence"]["emb"]), evidence="knn")
    with pytest.raises(InputError, match="example evidence holds NaN"):
        _tagger().load(path)
