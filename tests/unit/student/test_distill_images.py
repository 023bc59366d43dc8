"""A StudentClassifier as an image student: a head on (N, D) backbone features, soft targets."""

from __future__ import annotations

import numpy as np
import pytest

from zsl.student.classifier import StudentClassifier, folder_size

pytest.importorskip("torch")

LABELS = ["person", "dog", "car", "pizza"]


def fake_image_features(n: int = 96, d: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative, unnormalised "pooled backbone features" and soft teacher scores."""
    rng = np.random.default_rng(seed)
    X = np.abs(rng.normal(size=(n, d)) * rng.uniform(0.2, 5.0, size=d)).astype(np.float32)
    z = (X[:, : len(LABELS)] - np.median(X[:, : len(LABELS)], axis=0)) / X[:, : len(LABELS)].std(axis=0)
    soft = (1.0 / (1.0 + np.exp(-3.0 * z))).astype(np.float32)  # soft targets in (0, 1)
    return X, soft


@pytest.mark.parametrize("params", [{"loss": "bce"}, {"loss": "asl", "refine": True}])
def test_image_feature_student_fits_soft_targets_and_round_trips(tmp_path, params):
    X, soft = fake_image_features()
    st = StudentClassifier(standardize=True, epochs=30, batch_size=32, learning_rate=0.03, random_state=0,
                           **params).fit(X, soft, vocab=LABELS, provenance={"teacher": "test"})
    assert st.input_kind_ == "features" and st.n_features_in_ == X.shape[1]
    proba = st.predict_proba(X)
    assert proba.shape == (len(X), len(LABELS)) and ((proba >= 0) & (proba <= 1)).all()
    hard = soft >= 0.5
    assert (st.predict(X).astype(bool) == hard).mean() > 0.85  # learnt the teacher's labels

    folder = st.save(tmp_path / "student")
    assert folder_size(folder) > 0
    back = StudentClassifier.load(folder)
    assert list(back.classes_) == LABELS and back.input_kind_ == "features"
    np.testing.assert_allclose(back.predict_proba(X), proba, atol=1e-6)
    assert back.threshold_ == pytest.approx(st.threshold_)
    assert back.provenance_ == {"teacher": "test"}
    with pytest.raises(Exception, match="features"):
        back.predict_proba(X[:, :10])  # features from another backbone
