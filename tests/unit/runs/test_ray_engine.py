"""The Ray engine (issue #16): the same run directory, chunks and outputs as the local engine, on a local Ray.

One Ray instance (4 logical CPUs) is started for the module; the driver-kill and bad-address
cases run ``zsl label`` in a subprocess. Labelling uses the hashing encoder or a scripted LM
(no model files), so what is tested is the engine: scheduling, exactly-once chunks, resume,
refusals and errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakes import ScriptedLM
from zsl.errors import InputError, ZslError
from zsl.runs.label import label_run

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'zsl[ray]'")

ROOT = Path(__file__).resolve().parents[3]
OUTPUTS = ("labels.jsonl", "errors.jsonl", "labels.jsonl.meta.json", "plan.json")
TOPICS = ["sports", "weather", "politics", "economy", "music", "science"]


@pytest.fixture(scope="module")
def cluster():
    """A local Ray with more logical CPUs than the workers the tests start; its GCS address."""
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # BoomLM below, for the workers
    ray.cloudpickle.register_pickle_by_value(sys.modules["tests.fakes"])
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _items(path: Path, n: int = 240) -> Path:
    """Records with every kind of trouble a run reports: malformed JSON, a repeated id, an empty text."""
    lines = []
    for i in range(n):
        if i % 41 == 40:
            lines.append("{not json")
            continue
        rid = "7" if i == 30 else str(i)
        text = "" if i == 55 else f"news {i}: {TOPICS[i % 6]} and {TOPICS[(i * 5) % 6]} today"
        lines.append(json.dumps({"id": rid, "text": text}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data(tmp_path):
    items = _items(tmp_path / "items.jsonl")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("\n".join(TOPICS) + "\n", encoding="utf-8")
    return items, vocab


ARGS = {"encoder": "hashing", "infer": False, "rank": False, "k": 2, "chunk_size": 16}


def _reference(tmp_path, items, vocab, **kw):
    ref = tmp_path / "local"
    s = label_run(items, vocab, out=ref, **{**ARGS, **kw})
    assert s.engine == "local" and s.skipped > 0
    return ref


def _same(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not (b / "chunks").exists()


def test_ray_and_local_engines_write_identical_files(cluster, tmp_path, data):
    items, vocab = data
    ref = _reference(tmp_path, items, vocab)
    s = label_run(items, vocab, out=tmp_path / "ray", engine="ray", workers=2, **ARGS)
    _same(ref, tmp_path / "ray")
    assert (s.engine, s.workers) == ("ray", 2) and s.labelled == json.loads((ref / "summary.json").read_text())["labelled"]
    assert s.wall_seconds > 0 and s.startup_seconds > 0
    errors = [json.loads(line) for line in (tmp_path / "ray" / "errors.jsonl").read_text().splitlines()]
    assert any("malformed JSON" in e["reason"] for e in errors) and any("duplicate id" in e["reason"] for e in errors)
    plan = json.loads((tmp_path / "ray" / "plan.json").read_text())
    assert plan["chunk_size"] == 16 and plan["records"] == 240 and plan["chunks"] == 15
    log = (tmp_path / "ray" / "log.txt").read_text()
    assert "engine ray: 2 worker(s) x 1 thread(s)" in log


@pytest.mark.parametrize("restart_s", [0, 4])
def test_a_killed_worker_is_replaced_and_its_chunk_redone(cluster, tmp_path, data, monkeypatch, restart_s):
    """restart_s = 4: the restarted worker takes seconds to come back, as on a busy machine (CI once failed the
    run: the chunk was handed three times to the restarting worker, each refused at once as unavailable)."""
    items, vocab = data
    ref = _reference(tmp_path, items, vocab)
    monkeypatch.setenv("ZSL_FAULT_KILL_WORKER_AT_CHUNK", "3")  # SIGKILL, the first time a worker starts chunk 3
    if restart_s:
        monkeypatch.setenv("ZSL_FAULT_SLOW_RESTART", str(restart_s))
    s = label_run(items, vocab, out=tmp_path / "ray", engine="ray", workers=2, **ARGS)
    log = (tmp_path / "ray" / "log.txt").read_text()
    assert "chunk 3: the worker died while labelling it (try 1 of 3)" in log
    _same(ref, tmp_path / "ray")
    assert s.labelled == json.loads((ref / "summary.json").read_text())["labelled"]


class BoomLM(ScriptedLM):
    """A scripted LM that raises on one item, as a broken record or a model bug would."""

    def forward(self, prompt=None, messages=None, **kwargs):
        if "BOOM" in json.dumps(messages or prompt):
            raise RuntimeError("the model choked on this record")
        return super().forward(prompt=prompt, messages=messages, **kwargs)


def test_an_item_that_raises_in_a_worker_is_skipped_and_reported_as_locally(cluster, tmp_path):
    items = tmp_path / "items.txt"
    items.write_text("the football team won\nBOOM goes the record\nstorms and rain ahead\n", encoding="utf-8")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("sports\nweather\n", encoding="utf-8")

    def lm():
        return BoomLM({"football": {"phrases": "sports"}, "storms": {"phrases": "weather"}},
                      judge=lambda label: 3.0 if label == "sports" else -3.0)

    kw = {"encoder": "hashing", "k": 1, "chunk_size": 2}
    local = label_run(items, vocab, out=tmp_path / "local", lm=lm(), **kw)
    ray_run = label_run(items, vocab, out=tmp_path / "ray", lm=lm(), engine="ray", workers=2, **kw)
    assert local.skipped == ray_run.skipped == 1 and ray_run.labelled == 2
    _same(tmp_path / "local", tmp_path / "ray")
    err = json.loads((tmp_path / "ray" / "errors.jsonl").read_text())
    assert err["id"] == "2" and "the model choked on this record" in err["reason"]
    assert ray_run.tokens["infer"]["calls"] == local.tokens["infer"]["calls"] >= 2


def _settled_chunks(folder: Path, quiet: float = 2.0, limit: float = 30.0) -> list[str]:
    """The chunk files in ``folder`` once no new one has appeared for ``quiet`` seconds."""
    seen, since, start = None, time.monotonic(), time.monotonic()
    while time.monotonic() - start < limit:
        now = sorted(p.name for p in folder.glob("*.jsonl"))
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.2)
    return seen or []


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zsl.cli", "label", *args], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _cli_args(items: Path, vocab: Path, out: Path) -> list[str]:
    return [str(items), "--labels", str(vocab), "--encoder", "hashing", "--no-infer", "--no-rank", "-k", "2",
            "--chunk-size", "16", "--out", str(out)]


@pytest.mark.parametrize("resume_with", ["local", "ray"])
def test_a_driver_killed_with_sigkill_leaves_a_run_that_either_engine_completes(cluster, tmp_path, data, resume_with):
    items, vocab = data
    ref = _reference(tmp_path, items, vocab)
    out = tmp_path / "run"
    got = _cli(*_cli_args(items, vocab, out), "--engine", "ray", "--workers", "2", "--address", cluster,
               env={"ZSL_FAULT_KILL_DRIVER_AFTER": "4"})  # the driver SIGKILLs itself after 4 chunks are in
    assert got.returncode == -signal.SIGKILL, got.stderr[-2000:]
    # The killed driver's workers live on in the cluster until Ray reaps them, and a chunk they
    # were labelling may still land (atomically); count the chunks once none has appeared for 2 s.
    done = _settled_chunks(out / "chunks")
    assert 4 <= len(done) < 15 and not (out / "labels.jsonl").exists()
    more = {"engine": "ray", "workers": 2} if resume_with == "ray" else {}
    s = label_run(items, vocab, out=out, **more, **ARGS)
    assert s.resumed_chunks == len(done)
    _same(ref, out)


def test_a_changed_input_or_setting_is_refused_as_locally(cluster, tmp_path, data):
    items, vocab = data
    out = tmp_path / "run"
    got = _cli(*_cli_args(items, vocab, out), "--engine", "ray", "--workers", "1", "--address", cluster,
               env={"ZSL_FAULT_KILL_DRIVER_AFTER": "2"})
    assert got.returncode == -signal.SIGKILL
    with pytest.raises(InputError, match=r"different inputs or settings: settings\.k: 2 -> 3"):
        label_run(items, vocab, out=out, engine="ray", workers=1, **{**ARGS, "k": 3})
    with items.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps({"id": "new", "text": "one more"}) + "\n")
    with pytest.raises(InputError, match=r"different inputs or settings: input\.fingerprint"):
        label_run(items, vocab, out=out, engine="ray", workers=1, **ARGS)


def test_an_unreachable_address_fails_within_seconds(tmp_path, data):
    items, vocab = data
    t0 = time.monotonic()
    got = _cli(*_cli_args(items, vocab, tmp_path / "run"), "--engine", "ray", "--address", "127.0.0.1:9", timeout=60)
    assert time.monotonic() - t0 < 30
    assert got.returncode != 0 and "No Ray cluster answers at 127.0.0.1:9" in got.stderr
    assert "ray start --head" in got.stderr and "Traceback" not in got.stderr


def test_a_bad_address_and_engine_options_get_clear_errors():
    from zsl.runs.ray_engine import check_address

    with pytest.raises(InputError, match="is not a Ray address. Expected HOST:PORT"):
        check_address("my-cluster")
    with pytest.raises(InputError, match="Unknown engine 'spark'"):
        label_run("x.txt", ["a"], engine="spark")
    with pytest.raises(InputError, match="workers only apply to engine='ray'"):
        label_run("x.txt", ["a"], workers=2)


def test_without_ray_installed_the_error_names_the_install_command(monkeypatch):
    from zsl.runs.ray_engine import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InputError, match=r"pip install 'zsl\[ray\]'"):
        import_ray()


def test_a_run_directory_workers_cannot_see_is_explained(tmp_path):
    from zsl.runs.ray_engine import check_visible

    with pytest.raises(ZslError, match="cannot see the run directory .* file system every node mounts"):
        check_visible(tmp_path / "elsewhere", "token")
    (tmp_path / ".zsl-probe").write_text("token", encoding="utf-8")
    check_visible(tmp_path, "token")  # seen and writable: no error, nothing left behind
    assert [p.name for p in tmp_path.iterdir()] == [".zsl-probe"]


def test_more_workers_than_the_cluster_has_cpus_is_refused(cluster, tmp_path, data):
    items, vocab = data
    with pytest.raises(InputError, match=r"3 worker\(s\) x 2 thread\(s\) need 6 CPUs; the Ray cluster has 4"):
        label_run(items, vocab, out=tmp_path / "run", engine="ray", workers=3, threads_per_worker=2, **ARGS)


def test_workers_call_a_remote_llm_server_and_a_rerun_retries_only_its_failures(cluster, tmp_path, monkeypatch, capsys):
    """Light workers, the LLM behind an OpenAI-compatible server (here a fake one on loopback)."""
    from tests.fake_openai import FakeOpenAI
    from zsl.cli import main

    monkeypatch.setenv("ZSL_LM_CACHE", "0")  # forwarded to the workers with every ZSL_* variable
    monkeypatch.setenv("ZSL_RETRY_BASE_DELAY", "0.01")
    texts = ["football match tonight", "storm warning for the coast", "election results are in",
             "football transfer news", "storm damage on the roads", "cooking pasta at home"]
    items = tmp_path / "items.txt"
    items.write_text("\n".join(texts) + "\n", encoding="utf-8")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("football\nstorm\nelection\ncooking\n", encoding="utf-8")

    def label(out, server, *extra):
        return main(["label", str(items), "--labels", str(vocab), "--out", str(tmp_path / out), "--lm", "hosted_vllm/x",
                     "--api-base", server.api_base, "--encoder", "hashing", "--no-rank", "-k", "1", "--chunk-size", "2",
                     "--retries", "1", *extra])

    with FakeOpenAI() as healthy:
        assert label("local", healthy) == 0
    with FakeOpenAI(fail_first=None, fail_status=503, fail_when=lambda text: "storm" in text) as server:
        assert label("ray", server, "--engine", "ray", "--workers", "2") == 3
        errors = [json.loads(x) for x in (tmp_path / "ray" / "errors.jsonl").read_text().splitlines()]
        assert [e["id"] for e in errors] == ["2", "5"] and all(e["retryable"] for e in errors)
        server.fail_first = 0
        server.texts.clear()
        assert label("ray", server, "--engine", "ray", "--workers", "2") == 0
    assert sorted(t for t in server.texts if t) == sorted(t for t in texts if "storm" in t)  # only the failed items
    _same(tmp_path / "local", tmp_path / "ray")
    assert "engine ray: 2 worker(s)" in capsys.readouterr().out


def test_with_ray_the_items_the_driver_scored_for_the_catch_all_pivot_are_not_asked_again(cluster, tmp_path, monkeypatch):
    """The zero-shot pivot needs the LLM's scores of the first items, asked by the driver before any worker
    starts; those chunks are labelled on the driver from its answers, the others by the workers: each item is
    asked once (no answer cache to hide a second, paid, request)."""
    from tests.fake_openai import FakeOpenAI

    monkeypatch.setenv("ZSL_LM_CACHE", "0")
    monkeypatch.setenv("ZSL_RETRY_BASE_DELAY", "0.01")
    monkeypatch.setattr("zsl.runs.labeller.LM_PIVOT_ITEMS", 6)  # chunks 0-1 hold the driver's answers, 2 does not
    texts = [f"{w} report number {i}" for i, w in enumerate(["football", "storm", "election", "cooking"] * 3)]
    items = tmp_path / "items.txt"
    items.write_text("\n".join(texts) + "\n", encoding="utf-8")
    vocab = tmp_path / "labels.txt"
    vocab.write_text("football\nstorm\nelection\nother\n", encoding="utf-8")
    from zsl.cli import main

    with FakeOpenAI() as server:
        code = main(["label", str(items), "--labels", str(vocab), "--out", str(tmp_path / "ray"), "--lm", "hosted_vllm/x",
                     "--api-base", server.api_base, "--encoder", "hashing", "--no-rank", "-k", "1", "--chunk-size", "4",
                     "--engine", "ray", "--workers", "2"])
    assert code == 0
    asked = [t for t in server.texts if t]
    assert sorted(asked) == sorted(texts)  # every item once: the driver's 6 answers became their rows
    rows = [json.loads(x) for x in (tmp_path / "ray" / "labels.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [str(i) for i in range(1, len(texts) + 1)]  # line numbers
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["settings"]["catch_all"]["source"] == "quantile of the LLM scores"
