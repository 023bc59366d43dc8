"""A small real distillation: retrieve-only MiniLM teacher -> silver data -> student, on GoEmotions."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.integration


def _read(path, n):
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) == n:
                break
    return rows


def test_distil_goemotions_slice(shared_data, tmp_path):
    from zsl import LabelVocab, Tagger
    from zsl.evaluation.metrics import f1_scores, mean_average_precision
    from zsl.evaluation.report import silver_report
    from zsl.models.encoders import get_encoder
    from zsl.scoring import TopK
    from zsl.silver.data import read_silver, silver_from_tagger, write_silver
    from zsl.student.classifier import StudentClassifier, folder_size

    folder = shared_data / "goemotions"
    vocab = LabelVocab.from_file(folder / "goemotions_labels.txt")
    train = _read(folder / "goemotions_train.jsonl", 200)
    test = _read(folder / "goemotions_dev.jsonl", 300)
    encoder = get_encoder(None)

    teacher = Tagger(vocab, infer=False, rank=False, encoder=encoder)
    silver = silver_from_tagger(teacher, [r["text"] for r in train], ids=[r["id"] for r in train], rule=TopK(k=1))
    assert silver.provenance["encoder"] == encoder.model_id
    assert silver.provenance["settings"]["infer"] is False
    path = write_silver(silver, tmp_path / "silver.jsonl")
    report = silver_report(silver, png=tmp_path / "report.png")
    assert report.labels_per_item == 1.0 and report.n_empty == 0
    silver = read_silver(path)

    student = StudentClassifier(encoder=encoder, refine=True, random_state=0).fit_silver(silver)
    assert student.init_ == "zero_shot"
    saved = student.save(tmp_path / "student")
    assert folder_size(saved) < 50 * 1024 * 1024
    student = StudentClassifier.load(saved, vocab=vocab)

    test_texts = [r["text"] for r in test]
    y = vocab.to_multi_hot([r["labels"] for r in test])
    # the teacher's test scores in one batch (the same cosine similarities its per-item program computes)
    t_train = silver.scores
    t_test = encoder.encode(test_texts) @ teacher.index_.label_emb.T
    np.testing.assert_allclose(teacher.decision_function(test_texts[:5]), t_test[:5], atol=2e-4)
    s_train, s_test = student.predict_proba(silver.texts), student.predict_proba(test_texts)
    teacher_f1 = f1_scores(y, TopK(k=1).fit(t_train).predict(t_test))["micro_f1"]
    student_f1 = f1_scores(y, TopK(k=1).fit(s_train).predict(s_test))["micro_f1"]
    # Loose bounds on a few hundred items: the student keeps most of the teacher's quality.
    assert student_f1 >= 0.8 * teacher_f1
    assert mean_average_precision(y, s_test) >= 0.8 * mean_average_precision(y, t_test)
    assert np.corrcoef(t_test.ravel(), s_test.ravel())[0, 1] > 0.5

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(r) + "\n" for r in test[:50]), encoding="utf-8")
    from zsl.runs.label import label_run

    summary = label_run(items, None, model=saved, out=tmp_path / "labelled")
    assert summary.labelled == 50 and summary.eval is not None
