"""Run-directory hardening (issue #11): whose files --fresh may delete, the run lock, --dry-run 0,
streams and inputs that change mid-run, orphan temp files, permissions, unusable manifests."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import zsl.runs.label as run_mod
from tests.helpers import TOPICS, write_items
from zsl.cli import main
from zsl.errors import InputError, ZslError
from zsl.runs.label import estimate_run, label_run

KW = {"encoder": "hashing", "infer": False, "rank": False, "k": 2}


@pytest.fixture
def vocab_file(tmp_path):
    p = tmp_path / "labels.txt"
    p.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    return p


@pytest.fixture
def items(tmp_path):
    p = tmp_path / "items.jsonl"
    write_items(p, 12)
    return p


def _interrupt_after(monkeypatch, n_chunks):
    """Make the next run stop with Ctrl-C after ``n_chunks`` chunks; returns a function that undoes it."""
    real, calls = run_mod.label_chunk, []

    def stop(rd, ci, *args):
        if len(calls) == n_chunks:
            raise KeyboardInterrupt
        calls.append(ci)
        return real(rd, ci, *args)

    monkeypatch.setattr(run_mod, "label_chunk", stop)
    return lambda: monkeypatch.setattr(run_mod, "label_chunk", real)


# -- 2: a run directory identifies itself; --fresh deletes only zsl's files ---------------------------------------
def test_a_foreign_manifest_is_refused_without_suggesting_fresh_and_fresh_leaves_it_alone(tmp_path, items,
                                                                                          vocab_file):
    app = tmp_path / "webapp"
    (app / "chunks").mkdir(parents=True)
    manifest = '{"name": "my-web-app", "version": "1.0", "icons": []}'
    (app / "manifest.json").write_text(manifest)
    (app / "chunks" / "keep.txt").write_text("precious")
    with pytest.raises(InputError, match="zsl did not write") as info:
        label_run(items, vocab_file, out=app, **KW)
    assert "--fresh" not in str(info.value)
    with pytest.raises(InputError, match="zsl did not write"):
        label_run(items, vocab_file, out=app, fresh=True, **KW)
    assert (app / "manifest.json").read_text() == manifest
    assert (app / "chunks" / "keep.txt").read_text() == "precious"
    assert sorted(p.name for p in app.rglob("*")) == ["chunks", "keep.txt", "manifest.json"]  # nothing written


def test_fresh_removes_zsl_chunk_files_only_and_old_manifests_without_the_marker_still_resume(
        tmp_path, items, vocab_file, monkeypatch):
    run = tmp_path / "run"
    undo = _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        label_run(items, vocab_file, out=run, chunk_size=3, **KW)
    undo()
    (run / "chunks" / "notes.txt").write_text("mine")
    s = label_run(items, vocab_file, out=run, chunk_size=3, fresh=True, **{**KW, "k": 1})
    assert s.labelled == 12 and s.resumed_chunks == 0
    assert sorted(p.name for p in (run / "chunks").iterdir()) == ["notes.txt"]  # zsl's chunks merged and removed
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["zsl_run"] == 1
    # A run directory written before the marker existed is still recognised, resumed, and upgraded.
    del manifest["zsl_run"]
    (run / "manifest.json").write_text(json.dumps(manifest))
    assert label_run(items, vocab_file, out=run, chunk_size=3, **{**KW, "k": 1}).already_complete
    assert json.loads((run / "manifest.json").read_text())["zsl_run"] == 1


# -- 3: one run per run directory ----------------------------------------------------------------------------------
def test_a_second_run_on_the_same_out_is_refused_naming_the_holder_and_the_first_is_unharmed(
        tmp_path, items, vocab_file, monkeypatch):
    ref = label_run(items, vocab_file, out=tmp_path / "ref", chunk_size=3, **KW)
    run = tmp_path / "run"
    real = run_mod.label_chunk
    inside, release = threading.Event(), threading.Event()

    def slow(rd, ci, *args):
        if ci == 1:
            inside.set()
            assert release.wait(30)
        return real(rd, ci, *args)

    monkeypatch.setattr(run_mod, "label_chunk", slow)
    result = {}
    first = threading.Thread(target=lambda: result.setdefault("s", label_run(items, vocab_file, out=run,
                                                                             chunk_size=3, **KW)))
    first.start()
    try:
        assert inside.wait(30)
        for fresh in (False, True):
            with pytest.raises(ZslError, match=f"in use by another zsl run \\(pid {os.getpid()} on "
                                               f"{socket.gethostname()}, since ") as info:
                label_run(items, vocab_file, out=run, chunk_size=3, fresh=fresh, **KW)
            assert "input may have changed" not in str(info.value)
    finally:
        release.set()
        first.join(30)
    assert result["s"].labelled == ref.labelled
    assert (run / "labels.jsonl").read_bytes() == (tmp_path / "ref" / "labels.jsonl").read_bytes()
    assert label_run(items, vocab_file, out=run, chunk_size=3, **KW).already_complete


HOLD_LOCK = """
import fcntl, json, os, pathlib, socket, sys
run = pathlib.Path(sys.argv[1])
fd = os.open(run / ".zsl-lock", os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": "today"}).encode())
print("locked", flush=True)
sys.stdin.read()
"""


def test_a_lock_held_by_a_killed_process_or_left_as_a_stale_file_does_not_block(tmp_path, items, vocab_file,
                                                                               monkeypatch):
    run = tmp_path / "run"
    undo = _interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        label_run(items, vocab_file, out=run, chunk_size=3, **KW)
    undo()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ZslError, match=f"pid {holder.pid} on .*, since today"):
            label_run(items, vocab_file, out=run, chunk_size=3, **KW)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    s = label_run(items, vocab_file, out=run, chunk_size=3, **KW)  # the kernel dropped the dead holder's lock
    assert s.labelled == 12 and s.resumed_chunks == 2
    # A lock file naming a process that is gone, with nobody holding the lock, is ignored too.
    stale = tmp_path / "stale"
    stale.mkdir()
    (stale / ".zsl-lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                                 "since": "2020-01-01T00:00:00+0000"}))
    assert label_run(items, vocab_file, out=stale, **KW).labelled == 12


# -- 4: --dry-run 0 ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", ["0", "-3"])
def test_dry_run_zero_or_negative_is_an_error_not_a_full_run(tmp_path, items, vocab_file, capsys, n):
    code = main(["label", str(items), "--labels", str(vocab_file), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "--dry-run", n])
    err = capsys.readouterr().err
    assert code == 2 and "--dry-run" in err and "at least 1" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "items.jsonl.zsl").exists()


# -- 6: streams, and inputs that change during the run ------------------------------------------------------------
def _in_thread(fn, timeout=10.0):
    """Run ``fn()`` in a thread; returns (finished in time, the exception it raised)."""
    box = {}

    def target():
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["exc"] = exc

    t = threading.Thread(target=target, daemon=True)
    t0 = time.monotonic()
    t.start()
    t.join(timeout)
    return not t.is_alive(), box.get("exc"), time.monotonic() - t0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_fifo_input_is_refused_at_once_instead_of_hanging(tmp_path, vocab_file):
    fifo = tmp_path / "items.jsonl"
    os.mkfifo(fifo)
    try:
        for call in (lambda: label_run(fifo, vocab_file, out=tmp_path / "run", **KW),
                     lambda: estimate_run(fifo, vocab_file, sample=1, **KW)):
            done, exc, seconds = _in_thread(call)
            assert done, "label_run blocked on the FIFO"
            assert isinstance(exc, InputError) and seconds < 1.0
            assert "named pipe" in str(exc) and "write the stream to a file first" in str(exc)
    finally:  # unblock a reader stuck in open() (regression) so the thread can end
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="character device"):
        label_run("/dev/null", vocab_file, out=tmp_path / "run", **KW)


@pytest.mark.parametrize("change", ["append", "truncate"])
def test_an_input_that_changes_during_the_run_ends_in_an_error_not_success(tmp_path, items, vocab_file,
                                                                             monkeypatch, change):
    real = run_mod.label_chunk
    original = items.read_bytes()

    def edit_after_first(rd, ci, *args):
        real(rd, ci, *args)
        if ci == 0:
            if change == "append":
                with items.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"id": "late", "text": "a late football match"}) + "\n")
            else:
                items.write_bytes(original[: len(original) // 2])

    monkeypatch.setattr(run_mod, "label_chunk", edit_after_first)
    run = tmp_path / "run"
    with pytest.raises(InputError, match="changed while it was being labelled") as info:
        label_run(items, vocab_file, out=run, chunk_size=1, **KW)
    assert "size went from" in str(info.value) and "--fresh" in str(info.value)
    assert not (run / "labels.jsonl").exists() and not (run / "summary.json").exists()
    assert len(list((run / "chunks").glob("*.jsonl"))) >= 1  # finished chunks are kept
    assert "changed while" in (run / "log.txt").read_text()
    monkeypatch.setattr(run_mod, "label_chunk", real)
    with pytest.raises(InputError, match="input.fingerprint"):
        label_run(items, vocab_file, out=run, chunk_size=1, **KW)
    assert label_run(items, vocab_file, out=run, chunk_size=1, fresh=True, **KW).labelled > 0


def test_the_input_is_hashed_and_counted_in_one_read(tmp_path, items, vocab_file, monkeypatch):
    import zsl.data.records as data_mod

    tricky = tmp_path / "tricky.txt"
    tricky.write_bytes(b"\xef\xbb\xbf\n" + b"a\r\n\n   \n" + b"x" * (3 << 20) + b"\nlast line, no newline")
    opened = []
    real_open = Path.open

    def counting_open(self, *a, **kw):
        if self in (items, tricky):
            opened.append(a[0] if a else kw.get("mode", "r"))
        return real_open(self, *a, **kw)

    monkeypatch.setattr(Path, "open", counting_open)
    for path, fmt in ((tricky, "text"), (items, "jsonl")):
        expected = (data_mod.fingerprint(path), data_mod.count_records(path))
        opened.clear()
        assert data_mod.fingerprint_and_count(path, fmt) == expected and opened == ["rb"]
    assert expected[1] == 12 and data_mod.count_records(tricky) == 3
    opened.clear()
    label_run(items, vocab_file, out=tmp_path / "run", **KW)
    # whole reads: hash + count, the records, the hash again at the end (no separate counting pass)
    assert opened.count("rb") == 3, opened


# -- 7: temp files orphaned by kill -9 ------------------------------------------------------------------------------
def test_a_rerun_removes_temp_files_orphaned_by_kill_9_and_only_those(tmp_path, items, vocab_file, monkeypatch):
    ref = tmp_path / "ref"
    label_run(items, vocab_file, out=ref, chunk_size=5, **KW)
    run = tmp_path / "run"

    def killed(*a, **kw):
        raise KeyboardInterrupt  # stands in for kill -9 during the merge: every chunk is done

    real = run_mod._merge
    monkeypatch.setattr(run_mod, "_merge", killed)
    with pytest.raises(KeyboardInterrupt):
        label_run(items, vocab_file, out=run, chunk_size=5, **KW)
    monkeypatch.setattr(run_mod, "_merge", real)
    orphans = [run / ".labels.jsonl.4242.tmp", run / ".summary.json.4242.tmp", run / "chunks" / ".000001.jsonl.77.tmp"]
    for p in orphans:
        p.write_text('{"id": "half-written' * 1000)
    foreign = [run / ".mine.txt.4242.tmp", run / "chunks" / ".notes.jsonl.1.tmp"]
    for p in foreign:
        p.write_text("keep")
    s = label_run(items, vocab_file, out=run, chunk_size=5, **KW)
    assert s.resumed_chunks == 3 and not any(p.exists() for p in orphans)
    assert all(p.read_text() == "keep" for p in foreign)
    for name in ("labels.jsonl", "errors.jsonl"):
        assert (run / name).read_bytes() == (ref / name).read_bytes()


# -- 13: run directories are private -------------------------------------------------------------------------------
def test_run_directory_and_its_files_are_private_to_the_user(tmp_path, items, vocab_file, monkeypatch):
    old = os.umask(0o022)
    try:
        undo = _interrupt_after(monkeypatch, 1)
        with pytest.raises(KeyboardInterrupt):
            label_run(items, vocab_file, out=tmp_path / "run", chunk_size=5, **KW)
        run = tmp_path / "run"
        assert (run / "chunks").stat().st_mode & 0o777 == 0o700
        assert (run / "chunks" / "000000.jsonl").stat().st_mode & 0o777 == 0o600
        undo()
        label_run(items, vocab_file, out=run, chunk_size=5, **KW)
    finally:
        os.umask(old)
    assert run.stat().st_mode & 0o777 == 0o700
    for name in ("manifest.json", "labels.jsonl", "labels.jsonl.meta.json", "errors.jsonl", "summary.json", "log.txt",
                 ".zsl-lock"):
        assert (run / name).stat().st_mode & 0o777 == 0o600, name


# -- 9/10: unusable manifests, moved files, empty image folders -----------------------------------------------------
@pytest.mark.parametrize("content", [b"{not json", b"[1, 2, 3]", b"\xff\xfe\x00garbage", b""])
def test_an_unusable_manifest_is_one_clear_error(tmp_path, items, vocab_file, capsys, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_bytes(content)
    with pytest.raises(InputError, match="not a usable zsl run directory|zsl did not write"):
        label_run(items, vocab_file, out=run, **KW)
    code = main(["label", str(items), "--labels", str(vocab_file), "--encoder", "hashing", "--no-infer", "--no-rank",
                 "--out", str(run)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Fix:" in err and "Traceback" not in err
    assert (run / "manifest.json").read_bytes() == content


@pytest.mark.parametrize("target", ["/dev/zero", "fifo", "real", "missing"])
def test_a_manifest_that_is_a_link_or_a_fifo_is_refused_without_being_read(tmp_path, items, vocab_file, target):
    """A run folder from someone else: manifest.json (or the lock's pid file) planted as a link to /dev/zero, a
    dangling link, a link to a real run's manifest, or a FIFO must not be followed (no hang, no memory filled)."""
    real = tmp_path / "real"
    label_run(items, vocab_file, out=real, **KW)
    run = tmp_path / "run"
    run.mkdir()
    manifest = run / "manifest.json"
    if target == "fifo":
        os.mkfifo(manifest)
    else:
        manifest.symlink_to({"real": real / "manifest.json", "missing": tmp_path / "nowhere.json"}.get(target, target))
    with pytest.raises(InputError, match="symbolic link|named pipe") as err:
        label_run(items, vocab_file, out=run, **KW)
    assert "Fix" in str(err.value) and "manifest.json" in str(err.value)
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]  # nothing written beside it
    from zsl.runs.rundir import _lock_holder

    (tmp_path / "planted-lock").symlink_to("/dev/zero")  # a lock planted as a link: never read through
    assert _lock_holder(tmp_path / "planted-lock") == "a process that has not written its pid yet"


def test_moving_the_vocabulary_or_the_input_does_not_block_resume(tmp_path, items, vocab_file):
    run = tmp_path / "run"
    label_run(items, vocab_file, out=run, **KW)
    moved_vocab = tmp_path / "elsewhere" / "topics.txt"
    moved_items = tmp_path / "elsewhere" / "items.jsonl"
    moved_vocab.parent.mkdir()
    vocab_file.rename(moved_vocab)
    items.rename(moved_items)
    assert label_run(moved_items, moved_vocab, out=run, **KW).already_complete
    moved_vocab.write_text("\n".join(reversed(TOPICS)) + "\n", encoding="utf-8")  # the content still counts
    with pytest.raises(InputError, match="vocab.hash"):
        label_run(moved_items, moved_vocab, out=run, **KW)


def test_an_empty_image_folder_leaves_no_run_directory_behind(tmp_path):
    from PIL import Image

    from tests.helpers import ColourBackend

    folder, run = tmp_path / "imgs", tmp_path / "run"
    folder.mkdir()
    (folder / "readme.txt").write_text("images go here")
    with pytest.raises(InputError, match="No image files"):
        label_run(folder, ["red", "green", "blue"], out=run, image_backend=ColourBackend(), k=1)
    assert not run.exists()
    Image.new("RGB", (16, 16), (250, 5, 5)).save(folder / "r.png")
    s = label_run(folder, ["red", "green", "blue"], out=run, image_backend=ColourBackend(), k=1)
    assert s.labelled == 1
