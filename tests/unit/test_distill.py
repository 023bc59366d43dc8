"""The distilled student: losses, refinement, features/text modes, save/load, file entry points."""

from __future__ import annotations

import json

import numpy as np
import pytest

from zsl.distill import StudentClassifier, asymmetric_loss, distill_file, folder_size, soft_bce
from zsl.encoders import HashingEncoder
from zsl.errors import InputError, ModelIntegrityError, VocabularyError
from zsl.pseudo import make_silver, write_silver
from zsl.run import label_run
from zsl.scoring import TopK
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
    assert row["labels"] and "above_threshold" in row
    assert json.loads((tmp_path / "labelled" / "manifest.json").read_text())["settings"]["student_sha256"]
    with pytest.raises(VocabularyError):
        label_run(items, ["red", "green"], model=tmp_path / "student", out=tmp_path / "other")
