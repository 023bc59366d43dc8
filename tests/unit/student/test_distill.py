"""The distilled student: losses, refinement, features/text modes, save/load, file entry points."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsl.errors import InputError, ModelIntegrityError, VocabularyError
from zsl.models.encoders import HashingEncoder
from zsl.runs.label import label_run
from zsl.scoring import TopK
from zsl.silver.data import make_silver, write_silver
from zsl.student.classifier import StudentClassifier, asymmetric_loss, distill_file, folder_size, soft_bce
from zsl.vocab import LabelVocab

torch = pytest.importorskip("torch")

LABELS = ["red", "green", "blue"]


def toy(n: int = 120, d: int = 12, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    Y = (X[:, :3] > 0.3).astype(np.float32)
    return X, Y


FAST = {"epochs": 20, "learning_rate": 0.05, "batch_size": 32}


def test_feature_student_learns_and_keeps_label_order():
    X, Y = toy()
    st = StudentClassifier(**FAST).fit(X, Y, vocab=LABELS)
    proba = st.predict_proba(X)
    assert proba.shape == (120, 3) and proba.dtype == np.float32
    assert ((proba >= 0) & (proba <= 1)).all()
    assert (st.predict(X) == Y).mean() > 0.9
    assert list(st.classes_) == LABELS and st.input_kind_ == "features"
    assert st.predict(X[:2]).dtype == np.uint8
    labelled = st.predict_labels(X[:1])
    assert all(lab in LABELS for lab, _ in labelled[0])


def test_soft_bce_and_asl_reduce_to_known_values():
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    q = torch.tensor([[1.0, 0.0, 0.3]])
    p = torch.sigmoid(logits)
    manual = -(q * torch.log(p) + (1 - q) * torch.log(1 - p))
    torch.testing.assert_close(soft_bce(logits, q), manual)
    # without focusing and clipping ASL is BCE
    torch.testing.assert_close(asymmetric_loss(logits, q, gamma_pos=0, gamma_neg=0, clip=0), manual, atol=1e-6,
                               rtol=1e-5)
    # a negative below the clip margin costs nothing
    low = asymmetric_loss(torch.tensor([[-6.0]]), torch.tensor([[0.0]]), clip=0.05)
    assert float(low) == 0.0


def test_refinement_moves_labels_toward_the_student():
    X, Y = toy(seed=1)
    noisy = Y.copy()
    flip = np.random.default_rng(0).random(noisy.shape) < 0.15
    noisy[flip] = 1 - noisy[flip]
    st = StudentClassifier(refine=True, refine_rate=0.1, refine_anchor=2.0, random_state=0, **FAST).fit(
        X, noisy, vocab=LABELS)
    refined = st.refined_targets_
    assert refined.shape == Y.shape and ((refined >= 0) & (refined <= 1)).all()
    # the refined targets agree with the clean labels more often than the noisy ones did
    assert ((refined > 0.5) == Y.astype(bool)).mean() > ((noisy > 0.5) == Y.astype(bool)).mean()
    frozen = StudentClassifier(refine=True, refine_rate=0.0, **FAST).fit(X, noisy, vocab=LABELS)
    np.testing.assert_array_equal(frozen.refined_targets_, noisy)


def test_auto_threshold_reproduces_the_pseudo_labels_without_gold():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 8)).astype(np.float32)
    decision = TopK(k=1).fit_decide(X[:, :3])
    soft = decision.confidence  # chosen labels sit near 0.6: p >= 0.5 would miss many
    auto = StudentClassifier(**FAST).fit(X, soft)
    fixed = StudentClassifier(threshold=0.5, **FAST).fit(X, soft)
    assert 0.0 < auto.threshold_ < 1.0 and fixed.threshold_ == 0.5

    def agreement(st):
        return (st.predict(X) == decision.labels).mean()

    assert agreement(auto) >= agreement(fixed)
    with pytest.raises(InputError, match="threshold must be 'auto' or a probability"):
        StudentClassifier(threshold=1.5).fit(X, soft)


def test_seeds_are_explicit_and_local():
    X, Y = toy()
    before = torch.random.get_rng_state()
    a = StudentClassifier(head="mlp", random_state=1, **FAST).fit(X, Y).predict_proba(X)
    b = StudentClassifier(head="mlp", random_state=1, **FAST).fit(X, Y).predict_proba(X)
    c = StudentClassifier(head="mlp", random_state=2, **FAST).fit(X, Y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert torch.equal(before, torch.random.get_rng_state())


def test_threads_are_restored():
    X, Y = toy()
    n = torch.get_num_threads()
    StudentClassifier(n_threads=1, **FAST).fit(X, Y)
    assert torch.get_num_threads() == n


def test_zero_shot_init_starts_at_the_label_similarities():
    rng = np.random.default_rng(0)
    labels = rng.normal(size=(3, 12)).astype(np.float32)
    X = rng.normal(size=(200, 12)).astype(np.float32)
    sims = X @ labels.T
    Y = TopK(k=1).fit_decide(sims).confidence
    st = StudentClassifier(epochs=1, learning_rate=1e-8).fit(X, Y, label_embeddings=labels)
    assert st.init_ == "zero_shot"
    np.testing.assert_array_equal(st.predict_proba(X).argmax(axis=1), sims.argmax(axis=1))
    with pytest.raises(InputError, match=r"label_embeddings must have shape \(3, 12\)"):
        StudentClassifier(**FAST).fit(X, Y, label_embeddings=labels[:2])


def test_bad_inputs_are_explained():
    X, Y = toy()
    with pytest.raises(InputError, match=r"finite targets in \[0, 1\]"):
        StudentClassifier().fit(X, np.where(Y > 0, np.nan, 0.0))
    with pytest.raises(InputError, match=r"finite targets in \[0, 1\]"):
        StudentClassifier().fit(X, Y * 2)
    with pytest.raises(InputError, match="120 items but 10 target rows"):
        StudentClassifier().fit(X, Y[:10])
    with pytest.raises(InputError, match="3 columns but the vocabulary has 2"):
        StudentClassifier().fit(X, Y, vocab=["a", "b"])
    with pytest.raises(InputError, match="loss must be one of"):
        StudentClassifier(loss="hinge").fit(X, Y)
    with pytest.raises(InputError, match="not fitted"):
        StudentClassifier().predict(X)
    st = StudentClassifier(**FAST).fit(X, Y)
    with pytest.raises(InputError, match="trained on 12-d feature arrays, not texts"):
        st.predict(["a text"])
    with pytest.raises(InputError, match="expects 12 features per item, got 5"):
        st.predict(X[:, :5])
    with pytest.raises(InputError, match="NaN/inf"):
        st.predict(np.full((1, 12), np.nan))


def test_save_load_round_trip_and_vocabulary_check(tmp_path):
    X, Y = toy()
    vocab = LabelVocab(LABELS, descriptions=["warm", None, "cool"])
    st = StudentClassifier(**FAST).fit(X, Y, vocab=vocab, provenance={"teacher": "fake"})
    path = st.save(tmp_path / "student")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert folder_size(path) < 50 * 1024 * 1024
    cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    assert cfg["labels"] == LABELS and cfg["vocab_hash"] == vocab.hash and cfg["provenance"] == {"teacher": "fake"}
    back = StudentClassifier.load(path, vocab=vocab)
    np.testing.assert_allclose(back.predict_proba(X), st.predict_proba(X), atol=1e-6)
    assert back.threshold_ == st.threshold_
    np.testing.assert_array_equal(back.predict(X), st.predict(X))
    assert back.vocab_.descriptions == vocab.descriptions
    with pytest.raises(VocabularyError, match=r"missing from your vocabulary: \['blue'\].*not in the student: "
                                              r"\['purple'\]"):
        StudentClassifier.load(path, vocab=["red", "green", "purple"])
    with pytest.raises(VocabularyError, match="different order; first difference at column 0"):
        StudentClassifier.load(path, vocab=["green", "red", "blue"])
    # saving again replaces the folder atomically
    st.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"]


def test_load_refuses_broken_folders(tmp_path):
    with pytest.raises(InputError, match="not a zsl student folder"):
        StudentClassifier.load(tmp_path)
    X, Y = toy()
    path = StudentClassifier(**FAST).fit(X, Y).save(tmp_path / "s")
    with (path / "model.safetensors").open("ab") as fh:
        fh.write(b"junk")
    with pytest.raises(ModelIntegrityError, match="sha256"):
        StudentClassifier.load(path)


def test_save_to_unwritable_or_foreign_path(tmp_path):
    X, Y = toy()
    st = StudentClassifier(**FAST).fit(X, Y)
    blocker = tmp_path / "file"
    blocker.write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="Cannot write the student"):
        st.save(blocker / "student")
    with pytest.raises(InputError, match="not a zsl student folder; refusing"):
        st.save(blocker)
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(InputError, match="refusing to overwrite"):
        st.save(other)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "mine"]


def test_text_student_with_hashing_encoder_and_file_entry_points(tmp_path):
    texts = [f"{c} {noun} number {i}" for i in range(20) for c, noun in (("red", "apple"), ("green", "leaf"),
                                                                            ("blue", "sky"))]
    enc = HashingEncoder()
    vocab = LabelVocab(LABELS)
    scores = enc.encode(texts) @ enc.encode(LABELS).T
    silver = make_silver(scores, vocab, TopK(k=1), texts=texts)
    silver_path = write_silver(silver, tmp_path / "silver.jsonl")
    summary = distill_file(silver_path, tmp_path / "student", encoder="hashing", **FAST)
    assert summary["n_items"] == 60 and summary["agreement"] > 0.9
    st = StudentClassifier.load(tmp_path / "student")
    assert st.input_kind_ == "text" and st._encoder_kwargs == {"dim": 256}
    assert [lab for lab, _ in st.predict_labels(["a red apple"])[0]][:1] == ["red"]
    # labelling with the student goes through the run machinery (zsl label --model)
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": str(i), "text": t, "labels": [t.split()[0]]}) + "\n"
                             for i, t in enumerate(texts[:9])), encoding="utf-8")
    out = label_run(items, None, model=tmp_path / "student", out=tmp_path / "labelled", k=1)
    assert out.labelled == 9 and out.eval["p_at_1"] > 0.8
    row = json.loads((tmp_path / "labelled" / "labels.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert len(row["labels"]) == 1 and "above_threshold" not in row  # -k 1 alone: the rows' sets are the best label
    settings = json.loads((tmp_path / "labelled" / "manifest.json").read_text())["settings"]
    assert settings["student_sha256"] and settings["rule"]["name"] == "topk" and settings["rule"]["k"] == 1
    with pytest.raises(VocabularyError):
        label_run(items, ["red", "green"], model=tmp_path / "student", out=tmp_path / "other")


# -- hostile student folders (issue #26, S4-S8): refused at load with the folder and the fix ----------------
def _edit_student(path, *, config=None, tensors=None):
    """Edit a saved student as an attacker would: weights rewritten with a fresh sha256, config.json by hand."""
    from safetensors.torch import load_file, save_file

    from zsl.models.registry import sha256_file

    cfg_path, weights = path / "config.json", path / "model.safetensors"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if tensors is not None:
        t = load_file(str(weights))
        tensors(t)
        save_file(t, str(weights), metadata={"format": "pt"})
        cfg["weights_sha256"] = sha256_file(weights)
    if config is not None:
        config(cfg)
    cfg_path.write_text(json.dumps(cfg), encoding="utf-8")  # json writes NaN / Infinity as Python reads them
    return path


def _saved(tmp_path, **params):
    X, Y = toy()
    return StudentClassifier(**FAST, **params).fit(X, Y, vocab=LABELS).save(tmp_path / "student")


def test_a_student_missing_a_tensor_names_it_and_the_folder(tmp_path):
    path = _edit_student(_saved(tmp_path), tensors=lambda t: t.pop("feature_mean"))
    with pytest.raises(InputError, match=r"lacks the tensor\(s\) feature_mean .*student.*Fix: restore"):
        StudentClassifier.load(path)


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda c: c["params"].update(head="mlp", hidden_size=-5), "hidden_size must be an integer >= 1, got -5"),
    (lambda c: c["params"].update(hidden_size=0), "hidden_size must be an integer >= 1, got 0"),
    (lambda c: c.update(n_features_in=-3), "'n_features_in' must be a positive integer"),
    (lambda c: c.update(n_features_in=0), "'n_features_in' must be a positive integer"),
    (lambda c: c.update(labels=[]), "'labels' must be a non-empty list"),
    (lambda c: c["params"].update(head="xyz"), "head must be one of"),
])
def test_negative_or_zero_sizes_in_the_config_are_refused(tmp_path, edit, needle):
    path = _edit_student(_saved(tmp_path), config=edit)
    with pytest.raises(InputError, match=needle) as info:
        StudentClassifier.load(path)
    assert str(path / "config.json") in str(info.value)


@pytest.mark.parametrize(("params", "edit", "needle"), [
    ({}, lambda c: c.update(n_features_in=30_000_000), r"head.0.weight is \[3, 12\] in the weights but \[3, 30000000\]"),
    ({"head": "mlp", "hidden_size": 8}, lambda c: c["params"].update(hidden_size=20_000_000),
     r"head.0.weight is \[8, 12\] in the weights but \[20000000, 12\]"),
])
def test_sizes_claimed_by_the_config_are_checked_against_the_weights_before_any_allocation(
        tmp_path, monkeypatch, params, edit, needle):
    """A crafted folder claiming a 20 GB head is refused from the safetensors header alone (issue #26, S6)."""
    import resource

    path = _edit_student(_saved(tmp_path, **params), config=edit)

    def no_head(self, d, k):  # guards the machine: the old code built the claimed head before looking at the weights
        raise AssertionError(f"a ({d} x {k}) head was built before the sizes were checked")

    monkeypatch.setattr(StudentClassifier, "_build_head", no_head)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(InputError, match=needle) as info:
        StudentClassifier.load(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # KiB: nothing of the claimed size
    assert "were edited" in str(info.value) and "Fix:" in str(info.value)


@pytest.mark.parametrize(("tensors", "needle"), [
    (lambda t: t["head.0.weight"].__setitem__((0, 0), float("nan")), "NaN or infinite values in head.0.weight"),
    (lambda t: t["feature_mean"].__setitem__(1, float("inf")), "NaN or infinite values in feature_mean"),
    (lambda t: t["feature_scale"].__setitem__(2, 0.0), "feature_scale has 1 value"),
])
def test_a_student_with_non_finite_weights_is_refused_at_load(tmp_path, tensors, needle):
    path = _edit_student(_saved(tmp_path), tensors=tensors)
    with pytest.raises(InputError, match=needle):
        StudentClassifier.load(path)


@pytest.mark.parametrize("threshold", [float("nan"), float("inf"), -0.5, 1.0, "0.5"])
def test_a_threshold_that_is_not_a_probability_is_refused_at_load(tmp_path, threshold):
    path = _edit_student(_saved(tmp_path), config=lambda c: c.update(threshold=threshold))
    with pytest.raises(InputError, match="'threshold' must be a probability"):
        StudentClassifier.load(path)
    path = _edit_student(path, config=lambda c: c.update(threshold=0.3) or c["params"].update(threshold=threshold))
    with pytest.raises(InputError, match="threshold must be 'auto' or a probability"):
        StudentClassifier.load(path)


def test_saving_a_student_twice_writes_the_same_bytes(tmp_path):
    """The weights file is a function of the weights: its sha256 goes into run manifests and settings hashes.

    safetensors writes the header's metadata from a Rust HashMap, whose order is random per map; with two
    metadata keys, half the saves of one student wrote different bytes (found by the byte-for-byte check of
    the #27 move)."""
    X, Y = toy()
    student = StudentClassifier(**FAST).fit(X, Y, vocab=LABELS)
    sums = {json.loads((student.save(tmp_path / f"s{i}") / "config.json").read_text())["weights_sha256"]
            for i in range(16)}
    assert len(sums) == 1
