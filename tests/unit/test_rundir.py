"""Run-directory hardening (issue #11): whose files --fresh may delete, the run lock, --dry-run 0,
streams and inputs that change mid-run, orphan temp files, permissions, unusable manifests."""

import pytest

from tests.unit.test_run import TOPICS, _write_items
from zsl.cli import main


@pytest.fixture
def vocab_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def items(tmp_path):
    p = tmp_path / "items.jsonl"
    _write_items(p, 12)
    return p


# -- 4: --dry-run 0 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", ["0", "-3"])
def test_dry_run_zero_or_negative_is_an_error_not_a_full_run(tmp_path, items, vocab_file, capsys, n):
    code = main(["label", str(items), "--labels", str(vocab_file), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "--dry-run", n])
    err = capsys.readouterr().err
    assert code == 2 and "--dry-run" in err and "at least 1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "items.jsonl.zsl").exists()
