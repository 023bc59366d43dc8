"""The reliability plot of `zsl eval` and its maths (#30)."""

from __future__ import annotations

import numpy as np
import pytest

from zsl.errors import InputError
from zsl.evaluation.evaluate import evaluate
from zsl.evaluation.metrics import reliability
from zsl.evaluation.report import write_report


def test_reliability_bins_and_ece():
    p = np.array([0.05, 0.15, 0.15, 0.95, 0.95, 1.2, -0.1])
    y = np.array([0, 0, 1, 1, 1, 1, 0])
    r = reliability(y, p, bins=10)
    assert r["count"].sum() == 7 and r["count"][0] == 2 and r["count"][9] == 3  # out-of-range values clipped
    assert r["frequency"][1] == pytest.approx(0.5) and np.isnan(r["frequency"][5])
    # ECE: bin 0 |0.025-0|*2, bin 1 |0.15-0.5|*2, bin 9 |(0.95+0.95+1)/3 - 1|*3, over 7
    assert r["ece"] == pytest.approx((0.025 * 2 + 0.35 * 2 + (1 - 2.9 / 3) * 3) / 7)
    perfect = reliability(np.array([1, 1]), np.array([1.0, 1.0]))
    assert perfect["ece"] == pytest.approx(0.0)
    with pytest.raises(InputError):
        reliability(np.zeros(2), np.zeros(3))


def test_eval_report_writes_the_reliability_plot(tmp_path):
    rng = np.random.default_rng(0)
    rows, gold = [], {}
    for i in range(40):
        s = rng.random(3)
        rows.append({"id": str(i), "labels": ["a", "b", "c"], "scores": s.round(3).tolist()})
        gold[str(i)] = [lab for lab, v in zip("abc", s, strict=True) if rng.random() < v]
    paths = write_report(evaluate(rows, gold), tmp_path / "eval")
    png = paths["reliability"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    md = paths["markdown"].read_text(encoding="utf-8")
    assert "](reliability.png)" in md and "ECE 0." in md
