"""File safety (issue #26, reliability probe 2026-12-07): an output never overwrites an input or a
folder zsl did not write, and lock and log files are never opened through a link.

Every case runs on real files and real symlinks, through the CLI where the probe used the CLI."""

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest

from tests.helpers import TOPICS, write_items
from zsl.cli import main
from zsl.data.files import write_text_atomic
from zsl.errors import InputError

LABEL = ["--encoder", "hashing", "--no-infer", "--no-rank", "-k", "2"]


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


@pytest.fixture
def work(tmp_path, monkeypatch):
    """The probe's folder: items.jsonl, labels.txt and a complete run ``run1``."""
    monkeypatch.chdir(tmp_path)
    write_items(tmp_path / "items.jsonl", 40)
    (tmp_path / "labels.txt").write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    assert main(["label", "items.jsonl", "--labels", "labels.txt", *LABEL, "--out", "run1"]) == 0
    return tmp_path


def _victim(tmp_path: Path, name: str = "victim.txt") -> Path:
    v = tmp_path / name
    v.write_text("precious content\n", encoding="utf-8")
    return v


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("zsl: error: ") and "Traceback" not in err, err
    return err


# -- the helper -----------------------------------------------------------------------------------------------------
def test_open_private_creates_0600_and_refuses_links_fifos_and_folders(tmp_path):
    from zsl.data.files import open_private

    fd = open_private(tmp_path / "new.lock")
    os.close(fd)
    assert stat.S_IMODE((tmp_path / "new.lock").stat().st_mode) == 0o600
    victim = _victim(tmp_path)
    (tmp_path / "link").symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link.*Fix: remove"):
        open_private(tmp_path / "link", append=True)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    for name, kind in (("fifo", "a named pipe"), ("dir", "a folder")):
        with pytest.raises(InputError, match=f"is {kind}.*only as regular files. Fix: move"):
            open_private(tmp_path / name)
    with pytest.raises(InputError, match="is a device"):
        open_private("/dev/null")
    assert victim.read_text() == "precious content\n"


def test_an_atomic_write_never_writes_through_a_link_planted_under_its_temp_name(tmp_path):
    victim = _victim(tmp_path)
    (tmp_path / f".out.json.{os.getpid()}.tmp").symlink_to(victim)
    write_text_atomic(tmp_path / "out.json", "new", private=True)
    assert victim.read_text() == "precious content\n" and (tmp_path / "out.json").read_text() == "new"


def test_refuse_overwrite_sees_through_links_and_folders(tmp_path):
    from zsl.data.files import refuse_overwrite

    inp = _victim(tmp_path, "train.jsonl")
    (tmp_path / "alias.jsonl").symlink_to(inp)
    with pytest.raises(InputError, match="is the input"):
        refuse_overwrite(tmp_path / "alias.jsonl", [inp])
    with pytest.raises(InputError, match="holds the input"):
        refuse_overwrite(tmp_path, [None, inp], folder=True)
    refuse_overwrite(tmp_path / "other.json", [inp, None])
    refuse_overwrite(tmp_path, [inp])  # a file output beside its input is fine


# -- R24, O5: lock and log files planted as links ---------------------------------------------------------------------
def test_r24_a_review_lock_planted_as_a_link_is_refused_and_its_target_untouched(work):
    from zsl.runs.rundir import lock_review

    victim = _victim(work)
    (work / "run1" / ".zsl-review-lock").symlink_to(Path("..") / victim.name)
    with pytest.raises(InputError, match="symbolic link"):
        lock_review(work / "run1")
    assert victim.read_text() == "precious content\n"


def test_o5_a_run_lock_planted_as_a_link_is_refused_and_its_target_untouched(work, capsys):
    victim = _victim(work)
    (work / "run1" / ".zsl-lock").unlink()
    (work / "run1" / ".zsl-lock").symlink_to(Path("..") / victim.name)
    assert main(["label", "items.jsonl", "--labels", "labels.txt", *LABEL, "--out", "run1"]) == 2
    assert ".zsl-lock is a symbolic link" in _one_error_line(capsys)
    assert victim.read_text() == "precious content\n"


def test_o5_a_log_planted_as_a_link_gets_nothing_appended(work, capsys):
    victim = _victim(work)
    (work / "run1" / "log.txt").unlink()
    (work / "run1" / "log.txt").symlink_to(Path("..") / victim.name)
    assert main(["label", "items.jsonl", "--labels", "labels.txt", *LABEL, "--out", "run1", "--fresh"]) == 2
    assert "log.txt is a symbolic link" in _one_error_line(capsys)
    assert victim.read_text() == "precious content\n"
    assert (work / "run1" / "labels.jsonl").is_file()  # refused before --fresh deleted anything


# -- O1-O3: an output that is (or holds) an input ------------------------------------------------------------------
@pytest.mark.parametrize("fresh", [["--fresh"], []])
def test_o1_relabelling_a_runs_own_output_into_it_is_refused_before_anything_is_deleted(work, capsys, fresh):
    before = {p.name: _md5(p) for p in (work / "run1").iterdir() if p.is_file() and p.name != ".zsl-lock"}
    assert main(["label", "run1/labels.jsonl", "--labels", "labels.txt", *LABEL, "--out", "run1", *fresh]) == 2
    assert "holds the input" in _one_error_line(capsys)
    after = {p.name: _md5(p) for p in (work / "run1").iterdir() if p.is_file() and p.name != ".zsl-lock"}
    assert after == before


def test_o1_a_vocabulary_inside_the_run_folder_is_refused_too(work, capsys):
    shutil.copy(work / "labels.txt", work / "run1" / "labels.txt")
    assert main(["label", "items.jsonl", "--labels", "run1/labels.txt", *LABEL, "--out", "run1", "--fresh"]) == 2
    assert "holds the input" in _one_error_line(capsys)
    assert (work / "run1" / "labels.jsonl").is_file()


@pytest.mark.parametrize("fmt", ["argilla", "labelstudio"])
def test_o2_export_onto_its_own_predictions_is_refused(work, capsys, fmt):
    before = _md5(work / "run1" / "labels.jsonl")
    assert main(["export", "run1", "--format", fmt, "--out", "run1/labels.jsonl"]) == 2
    assert "is the input" in _one_error_line(capsys)
    (work / "alias.jsonl").symlink_to(work / "run1" / "labels.jsonl")
    assert main(["export", "run1/labels.jsonl", "--format", fmt, "--out", "alias.jsonl"]) == 2
    _one_error_line(capsys)
    assert _md5(work / "run1" / "labels.jsonl") == before


def test_o2_export_whose_companion_file_would_be_the_vocabulary_is_refused(work, capsys):
    shutil.copy(work / "labels.txt", work / "x.settings.json")
    assert main(["export", "run1", "--format", "argilla", "--out", "x.jsonl", "--labels", "x.settings.json"]) == 2
    assert "is the input" in _one_error_line(capsys)
    assert not (work / "x.jsonl").exists()


def test_o3_fit_onto_its_own_training_file_or_vocabulary_is_refused(work, capsys):
    shutil.copy(work / "items.jsonl", work / "train.jsonl")
    before = _md5(work / "train.jsonl")
    for out in ("train.jsonl", "labels.txt"):
        assert main(["fit", "train.jsonl", "--labels", "labels.txt", "--out", out, "--no-infer", "--no-rank",
                     "--encoder", "hashing"]) == 2
        assert "is the input" in _one_error_line(capsys)
    assert _md5(work / "train.jsonl") == before and (work / "labels.txt").read_text().startswith(TOPICS[0])


def test_eval_report_files_never_overwrite_its_gold_file(work, capsys):
    gold = work / "rep" / "eval.json"
    gold.parent.mkdir()
    gold.write_text("".join(json.dumps({"id": f"item-{i}", "labels": [TOPICS[0]]}) + "\n" for i in range(40)))
    before = _md5(gold)
    assert main(["eval", "run1", str(gold), "--out", "rep"]) == 2
    assert "is the input" in _one_error_line(capsys)
    assert _md5(gold) == before


def test_distill_into_the_folder_holding_its_silver_data_is_refused(work, capsys):
    assert main(["distill", "run1/labels.jsonl", "--out", "run1", "--encoder", "hashing", "--epochs", "2"]) == 2
    assert "holds the input" in _one_error_line(capsys)
    assert (work / "run1" / "labels.jsonl").is_file()


# -- D4, D5: only a zsl student folder is replaced ------------------------------------------------------------------
def test_d4_a_folder_with_someone_elses_config_json_is_not_replaced(work, capsys):
    proj = work / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.json").write_text('{"name": "my-web-app"}')
    (proj / "notes.txt").write_text("notes")
    (proj / "src" / "main.py").write_text("print(1)")
    assert main(["distill", "run1/labels.jsonl", "--out", "proj", "--encoder", "hashing", "--epochs", "2"]) == 2
    err = _one_error_line(capsys)
    assert "config.json zsl did not write" in err and "Fix:" in err
    assert sorted(p.name for p in proj.rglob("*")) == ["config.json", "main.py", "notes.txt", "src"]


def test_d4_a_student_folder_is_replaced_and_an_incomplete_one_is_not(work, capsys):
    args = ["distill", "run1/labels.jsonl", "--encoder", "hashing", "--epochs", "2", "--out"]
    assert main([*args, "student1"]) == 0
    assert main([*args, "student1"]) == 0  # a student is replaced by a new one
    assert main(["label", "items.jsonl", "--model", "student1", "--out", "r_st"]) == 0
    shutil.copytree(work / "student1", work / "half")
    (work / "half" / "model.safetensors").unlink()
    (work / "half" / "mine.txt").write_text("mine")
    capsys.readouterr()
    assert main([*args, "half"]) == 2
    _one_error_line(capsys)
    assert (work / "half" / "mine.txt").is_file()


@pytest.mark.parametrize("out", [".", "..", "{cwd}"])
def test_d5_out_the_current_folder_is_one_clear_line(work, capsys, out):
    here = work / "here"
    (here / "sub").mkdir(parents=True)
    os.chdir(here / "sub")
    (here / "sub" / "config.json").write_text('{"zsl_student": 1}')
    out = out.format(cwd=here / "sub")
    assert main(["distill", "../../run1/labels.jsonl", "--out", out, "--encoder", "hashing", "--epochs", "2"]) == 2
    assert "current folder" in _one_error_line(capsys)
    assert (here / "sub" / "config.json").is_file()


# -- X4: exports and programs hold item texts: owner-only -------------------------------------------------------------
@pytest.mark.parametrize("fmt,out,companion", [("labelstudio", "x5.json", "x5.config.xml"),
                                               ("argilla", "x5.jsonl", "x5.settings.json")])
def test_x4_exports_are_owner_only_whatever_the_umask(work, capsys, fmt, out, companion):
    old = os.umask(0o022)
    try:
        assert main(["export", "run1", "--format", fmt, "--out", out]) == 0
        assert main(["fit", "items.jsonl", "--labels", "labels.txt", "--out", "prog.json", "--no-infer",
                     "--no-rank", "--encoder", "hashing"]) == 0
    finally:
        os.umask(old)
    for name in (out, companion, "prog.json"):
        assert stat.S_IMODE((work / name).stat().st_mode) == 0o600, name


# -- O6: a moved or copied run names its own files ------------------------------------------------------------------
def test_o6_a_moved_run_is_complete_where_it_is_now(work, capfd):
    (work / "run1").rename(work / "mvB")
    capfd.readouterr()
    assert main(["label", "items.jsonl", "--labels", "labels.txt", *LABEL, "--out", "mvB"]) == 0
    out = capfd.readouterr().out
    assert "mvB is already complete" in out and "silver data: mvB/labels.jsonl" in out and "run1" not in out


def test_o6_a_copied_run_reports_its_own_rows(work, capfd):
    shutil.copytree(work / "run1", work / "copy")
    capfd.readouterr()
    assert main(["label", "items.jsonl", "--labels", "labels.txt", *LABEL, "--out", "copy"]) == 0
    out = capfd.readouterr().out
    assert "copy is already complete" in out and "(20 more rows in copy/labels.jsonl)" in out
    assert "silver data: copy/labels.jsonl" in out and "run1" not in out


# -- E4: gold labels outside the vocabulary are said on the console --------------------------------------------------
@pytest.mark.parametrize("vocab", [[], ["--labels", "labels.txt"]])  # without --labels: the run's own vocabulary
def test_e4_gold_labels_not_in_the_vocabulary_are_on_the_console(work, capsys, vocab):
    gold = work / "gold_unknown.jsonl"
    gold.write_text("".join(json.dumps({"id": f"item-{i}", "labels": [TOPICS[i % 5]] + (["nonexistent label"]
                                                                                         if i < 3 else [])}) + "\n"
                            for i in range(40)))
    assert main(["eval", "run1", str(gold), *vocab]) == 0
    console = "".join(capsys.readouterr())
    assert "1 gold label" in console and "'nonexistent label'" in console and "not in the vocabulary" in console


# -- found by the rerun of the probe (issue #26): run files, FIFOs, devices and hard links ----------------------------
@pytest.mark.parametrize("name", ["reviewed.jsonl", "teacher.jsonl", "manifest.json", "notes.json"])
def test_an_output_file_inside_a_run_directory_is_refused(work, capsys, name):
    target = work / "run1" / name
    if not target.exists():
        target.write_text('{"decisions": "a person made"}\n', encoding="utf-8")
    before = _md5(target)
    assert main(["export", "run1", "--format", "labelstudio", "--out", f"run1/{name}"]) == 2
    assert "inside the zsl run directory" in _one_error_line(capsys)
    assert main(["fit", "items.jsonl", "--labels", "labels.txt", "--out", f"run1/{name}", "--no-infer", "--no-rank",
                 "--encoder", "hashing"]) == 2
    assert "inside the zsl run directory" in _one_error_line(capsys)
    assert _md5(target) == before


def test_read_private_refuses_links_fifos_and_devices_without_reading_them(tmp_path):
    from zsl.data.files import read_private

    (tmp_path / "ok").write_bytes(b"a\nb\n")
    assert read_private(tmp_path / "ok") == b"a\nb\n"
    (tmp_path / "zero").symlink_to("/dev/zero")
    with pytest.raises(InputError, match="symbolic link"):
        read_private(tmp_path / "zero")
    os.mkfifo(tmp_path / "fifo")  # opening it for reading without O_NONBLOCK would wait for a writer forever
    with pytest.raises(InputError, match="named pipe"):
        read_private(tmp_path / "fifo")
    with pytest.raises(InputError, match="a device"):
        read_private("/dev/null")


def test_a_hard_linked_run_lock_is_refused_and_its_other_name_untouched(work, capsys):
    victim = _victim(work)
    (work / "run1" / ".zsl-lock").unlink()
    os.link(victim, work / "run1" / ".zsl-lock")
    assert main(["label", "items.jsonl", "--labels", "labels.txt", *LABEL, "--out", "run1"]) == 2
    assert "hard link" in _one_error_line(capsys)
    assert victim.read_text() == "precious content\n"


def test_a_planted_reviewed_jsonl_is_refused_when_the_review_opens_not_at_the_first_click(work):
    from zsl.silver.reviewed import ReviewStore

    _victim(work)
    (work / "run1" / "reviewed.jsonl").symlink_to(Path("..") / "victim.txt")
    with pytest.raises(InputError, match="symbolic link"):
        ReviewStore(work / "run1" / "reviewed.jsonl")
    (work / "run1" / "reviewed.jsonl").unlink()
    os.mkfifo(work / "run1" / "reviewed.jsonl")
    with pytest.raises(InputError, match="named pipe"):
        ReviewStore(work / "run1" / "reviewed.jsonl")


def test_labels_jsonl_that_is_a_device_gets_a_message_that_says_so(work, capsys):
    (work / "run1" / "labels.jsonl").unlink()
    (work / "run1" / "labels.jsonl").symlink_to("/dev/zero")
    assert main(["eval", "run1"]) == 2
    err = _one_error_line(capsys)
    assert "labels.jsonl is a symbolic link" in err and "folder without" not in err


def test_fit_names_an_unknown_label_by_its_id_and_the_cli_flag(work, capsys):
    rows = [json.loads(x) for x in (work / "items.jsonl").read_text().splitlines()]
    rows[6]["labels"] = ["nonexistent"]
    (work / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert main(["fit", "train.jsonl", "--labels", "labels.txt", "--out", "p.json", "--no-infer", "--no-rank",
                 "--encoder", "hashing"]) == 2
    err = _one_error_line(capsys)
    assert f"'nonexistent' (id {rows[6]['id']!r})" in err and "--skip-unknown-labels" in err
