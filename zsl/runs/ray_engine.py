"""Label a run's chunks on Ray workers: ``zsl label ... --engine ray``, ``label_run(..., engine="ray")``.

The run directory stays the single source of truth. The driver (the process that ran
``zsl label``) reads the input, cuts it into the same chunks as a local run and hands each
chunk that is not on disk yet to a worker: a Ray actor that builds the labeller (LLM,
encoder, vocabulary index, student) once and writes each chunk file itself, atomically,
with the same code as a local run (:func:`zsl.runs.chunks.label_chunk`). The merge is the local
one. So ``--engine local`` and ``--engine ray`` write byte-identical ``labels.jsonl``,
``errors.jsonl`` and ``labels.jsonl.meta.json``, and a run started under one resumes under
the other.

* **Exactly once.** A chunk file is complete or absent. A worker that dies mid-chunk is
  restarted by Ray (the model loads again) and the driver hands the chunk out again (three
  tries); a driver that dies leaves finished chunks that the next run keeps.
* **Shared artefacts are built once**, by the driver, before any worker starts: the embedded
  LLM is assembled and verified, and the vocabulary's embeddings go into the cache under
  ``$ZSL_HOME``, which workers read.
* **Where files live.** Workers write into the run directory and read the caches under
  ``$ZSL_HOME``: on a cluster both must be on a file system every node mounts at the same
  path (NFS, a shared disk). The driver checks this before labelling: each worker must read
  a file the driver just wrote there. Object stores (``s3://``) are not supported.
* Workers get the driver's ``ZSL_*`` environment and ``ZSL_THREADS`` /
  ``OMP_NUM_THREADS`` set to their share of threads.

Ray is optional: ``pip install 'zsl[ray]'``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zsl.data.files import BadRow, Item
from zsl.errors import InputError, ZslError
from zsl.runs.chunks import label_chunk, retry_chunk
from zsl.runs.rundir import RunDir
from zsl.vocab import LabelVocab

__all__ = ["AUTH_HINT", "INSTALL_HINT", "RayChunks", "ShardWorker", "check_address", "check_visible", "import_ray",
           "prepare_shared"]

INSTALL_HINT = "pip install 'zsl[ray]'"
TRIES = 3  # a chunk whose worker dies this many times fails the run (the other chunks are kept)
RESTART_WAIT = 120.0  # seconds to wait for a worker Ray is restarting before its chunk counts as a try
_PROBE = ".zsl-probe"
# Fault injection for the tests (tests/unit/runs/test_ray_engine.py): a worker SIGKILLs itself when it starts
# this chunk for the first time; the driver SIGKILLs itself after this many chunks are committed; a
# restarted worker sleeps this long in its constructor.
FAULT_WORKER = "ZSL_FAULT_KILL_WORKER_AT_CHUNK"
FAULT_DRIVER = "ZSL_FAULT_KILL_DRIVER_AFTER"
FAULT_SLOW_RESTART = "ZSL_FAULT_SLOW_RESTART"  # seconds a restarted worker takes to come back
AUTH_HINT = ("If the cluster uses token authentication (`ray start` turns it on by default since Ray 2.59), "
             "this machine needs the same: RAY_AUTH_MODE=token and the cluster's token in RAY_AUTH_TOKEN or "
             "~/.ray/auth_token (`ray get-auth-token` on the head node prints it); if it does not, leave "
             "RAY_AUTH_MODE unset here.")


def import_ray() -> Any:
    """The ``ray`` module, or an :class:`~zsl.errors.InputError` naming the install command."""
    try:
        import ray
    except ImportError:
        raise InputError(f"--engine ray needs Ray, which is not installed. Fix: {INSTALL_HINT}") from None
    return ray


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fail within ``timeout`` seconds when nothing listens at a Ray ``address`` (``host:port`` or
    ``ray://host:port``), instead of letting ``ray.init`` retry for minutes. ``auto`` is left to Ray.

    Example:
        >>> check_address("127.0.0.1:1", timeout=1)
        Traceback (most recent call last):
        ...
        zsl.errors.InputError: No Ray cluster answers at 127.0.0.1:1 (connection refused). Fix: ...
    """
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[1] if "://" in address else address
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InputError(f"--address {address!r} is not a Ray address. Expected HOST:PORT (the address "
                         "`ray start --head` prints, e.g. 10.0.0.5:6379) or ray://HOST:10001.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else (
            "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc)))
        raise InputError(f"No Ray cluster answers at {address} ({why}). Fix: start one with `ray start --head` on "
                         "that machine and pass the address it prints, or leave out --address to start Ray on this "
                         "machine.") from None


def check_visible(run_dir: str | os.PathLike[str], token: str) -> None:
    """Raise unless this process sees the run directory the driver wrote ``token`` into, and may write there.

    Workers on other machines write their chunks into the run directory, so it must be the same
    folder for all of them: a shared file system mounted at the same path.
    """
    host = socket.gethostname()
    probe = Path(run_dir) / _PROBE
    try:
        seen = probe.read_text(encoding="utf-8").strip()
    except OSError as exc:
        seen = f"<{exc.strerror or exc}>"
    if seen != token:
        raise ZslError(f"A Ray worker on {host} cannot see the run directory {run_dir} (the driver's check file there "
                       f"reads {seen[:60]!r}). Workers write their chunks into the run directory, so it must be on a "
                       "file system every node mounts at the same path (NFS, a shared disk). Fix: use such a --out, "
                       "or run with --engine local.")
    mine = probe.with_name(f"{_PROBE}.{host}.{os.getpid()}")
    try:
        mine.write_text(token, encoding="utf-8")
        mine.unlink()
    except OSError as exc:
        raise ZslError(f"A Ray worker on {host} cannot write into the run directory {run_dir} "
                       f"({exc.strerror or exc}). Fix: make it writable by the user the Ray workers run as.") from None


def prepare_shared(fmt: str, vocab: LabelVocab | None, settings: Any) -> Any:
    """Build, once and in the driver, what every worker would otherwise build at the same time:
    assemble and verify the embedded LLM and the encoder, and put the vocabulary's embeddings in
    the cache. Returns the settings with the LM and encoder names resolved (a worker's
    environment may lack ``$ZSL_LM`` / ``$ZSL_ENCODER``)."""
    if settings.model is not None or fmt == "images" or vocab is None:
        return settings  # a student folder or an image backend: each worker loads its own copy
    from zsl.index import VocabIndex
    from zsl.models.encoders import get_encoder
    from zsl.models.lm import is_remote, resolve_lm_name
    from zsl.models.registry import MODELS, model_path

    updates: dict[str, Any] = {}
    if settings.lm is None or isinstance(settings.lm, str):
        name = resolve_lm_name(settings.lm)
        updates["lm"] = name
        if (settings.infer or settings.rank) and not is_remote(name) and name in MODELS:
            model_path(name)  # assembled and verified once, here
    if settings.encoder is None:
        updates["encoder"] = os.environ.get("ZSL_ENCODER") or None
    VocabIndex(vocab, get_encoder(settings.encoder), use_descriptions=settings.label_descriptions,
               show_progress=len(vocab) > 2000)  # fills the embeddings cache
    return settings.updated(**{k: v for k, v in updates.items() if v is not None})


class ShardWorker:
    """One Ray worker: builds the labeller once, then labels whole chunks into the run directory."""

    def __init__(self, run_dir: str, coordinator: str):
        import ray

        # What to build comes from the run's coordinator, found by name, not as constructor arguments:
        # a restarted worker asks again (Ray cannot promise to keep constructor arguments held in
        # its object store, actor handles included, for a restart).
        self.progress = ray.get_actor(coordinator)
        self.fmt, self.vocab, self.settings = ray.get(self.progress.spec.remote())
        if self.fmt != "images" and self.settings.model is None:
            from zsl.models.lm import ensure_lm_cache

            ensure_lm_cache()  # an LM built by the driver arrives pickled: point DSPy's cache as get_lm would
        self.rd = RunDir(Path(run_dir))
        self.labeller: Any = None
        if os.environ.get(FAULT_SLOW_RESTART) and ray.get_runtime_context().was_current_actor_reconstructed:
            time.sleep(float(os.environ[FAULT_SLOW_RESTART]))  # a restart as slow as on a busy machine

    def ready(self, token: str) -> dict[str, Any]:
        """Check the run directory is visible here; say who this worker is."""
        check_visible(self.rd.path, token)
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def _get_labeller(self) -> Any:
        if self.labeller is None:
            from zsl.runs.labeller import make_labeller

            self.labeller = make_labeller(self.fmt, self.vocab, self.settings)
        return self.labeller

    def label(self, ci: int, chunk: list[Item | BadRow], dup: dict[int, str]) -> dict[str, Any]:
        labeller = self._get_labeller()
        if os.environ.get(FAULT_WORKER) == str(ci):
            import ray

            if not ray.get_runtime_context().was_current_actor_reconstructed:
                os.kill(os.getpid(), signal.SIGKILL)
        return label_chunk(self.rd, ci, chunk, dup, labeller, lambda n: self.progress.add.remote(ci, n))

    def retry(self, ci: int, chunk: list[Item | BadRow]) -> dict[str, Any]:
        n = retry_chunk(self.rd, ci, chunk, self._get_labeller())
        return {"chunk": ci, "retried": n}


class Coordinator:
    """A small actor: it hands every worker (and every restarted one) what to build, and counts
    the records of each chunk the workers have done, for the driver's progress bar."""

    def __init__(self, spec: tuple[str, LabelVocab | None, Any]) -> None:
        self._spec = spec
        self.done: dict[int, int] = {}

    def spec(self) -> tuple[str, LabelVocab | None, Any]:
        return self._spec

    def add(self, ci: int, n: int) -> None:
        self.done[ci] = self.done.get(ci, 0) + n

    def take(self) -> dict[int, int]:
        out, self.done = self.done, {}
        return out


class RayChunks:
    """The driver's side: start or join Ray, start the workers, hand out chunks, collect the results.

    Args:
        rd: the run directory (the driver holds its lock).
        fmt, vocab, settings: what the workers build their labeller from.
        address: a running cluster (``host:port``, ``ray://host:port`` or ``auto``); None
            starts Ray on this machine (or uses the Ray this process already started).
        workers: actors to start (None: the cluster's CPUs // ``threads``).
        threads: CPU threads per worker (None: 1).
        log: where to say what happens (the run's ``log.txt``).
    """

    def __init__(self, rd: RunDir, fmt: str, vocab: LabelVocab | None, settings: Any, *, address: str | None,
                 workers: int | None, threads: int | None, log: Callable[[str], None]):
        for name, value in (("workers", workers), ("threads_per_worker", threads)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InputError(f"{name} must be a whole number >= 1, got {value!r}")
        ray = self.ray = import_ray()
        self.rd, self.log = rd, log
        t0 = time.perf_counter()
        self.threads = threads or 1
        self.started_ray = False
        if not ray.is_initialized():
            if address is not None:
                check_address(address)
            env = {k: v for k, v in os.environ.items() if k.startswith("ZSL_")}
            kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False,
                                      "runtime_env": {"env_vars": env} if env else None}
            if address is None:
                cpus = os.cpu_count() or 1
                kwargs["num_cpus"] = max(cpus, (workers or 1) * self.threads)
            import logging

            try:  # ERROR: Ray's start-up notes (token authentication, "Started a local Ray instance") are noise here
                ray.init(address=address, logging_level=logging.ERROR, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise InputError(f"Could not start or join Ray ({'at ' + address if address else 'locally'}): "
                                 f"{str(exc).strip().splitlines()[0][:300]}. {AUTH_HINT}") from None
            self.started_ray = True
        try:
            cpus = int(ray.cluster_resources().get("CPU", 0))
            self.workers = workers or max(1, cpus // self.threads)
            if self.workers * self.threads > cpus:
                raise InputError(f"{self.workers} worker(s) x {self.threads} thread(s) need {self.workers * self.threads} "
                                 f"CPUs; the Ray cluster has {cpus}. Fix: fewer --workers or --threads-per-worker "
                                 "(or add nodes).")
            self._start_workers(fmt, vocab, settings)
        except BaseException:
            self.close()
            raise
        self.startup_seconds = time.perf_counter() - t0
        self.pending: dict[Any, tuple[Any, str, int, list[Item | BadRow], dict[int, str], int]] = {}
        self.shown: dict[int, int] = {}
        self.records: dict[int, int] = {}
        self.committed = 0
        self.failed: dict[int, str] = {}

    def _start_workers(self, fmt: str, vocab: LabelVocab | None, settings: Any) -> None:
        ray = self.ray
        env = {"ZSL_THREADS": str(self.threads), "OMP_NUM_THREADS": str(self.threads),
               "MKL_NUM_THREADS": str(self.threads), **{k: v for k, v in os.environ.items() if k.startswith("ZSL_")}}
        env["ZSL_THREADS"] = str(self.threads)
        name = f"zsl-coordinator-{secrets.token_hex(8)}"
        try:
            self.progress = ray.remote(Coordinator).options(num_cpus=0, name=name).remote((fmt, vocab, settings))
        except (TypeError, ValueError, AttributeError) as exc:  # what pickling raises on a loaded model
            raise InputError(f"The run's settings cannot be sent to Ray workers ({type(exc).__name__}: "
                             f"{str(exc)[:200]}). Fix: pass models by name (lm='qwen2.5-coder-1.5b', a .gguf path "
                             "or provider/model; a student folder), not as objects loaded in this process.") from None
        worker_cls = ray.remote(ShardWorker).options(num_cpus=self.threads, max_restarts=-1, max_task_retries=0,
                                                     runtime_env={"env_vars": env})
        self.actors = [worker_cls.remote(str(self.rd.path.resolve()), name) for _ in range(self.workers)]
        token = secrets.token_hex(16)
        probe = self.rd.path / _PROBE
        probe.write_text(token, encoding="utf-8")
        try:
            who = self._get([a.ready.remote(token) for a in self.actors])
        except ray.exceptions.RayError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise ZslError(f"The Ray workers did not start ({type(exc).__name__}: {first}). Fix: check the cluster "
                           f"with `ray status`. {AUTH_HINT}") from None
        finally:
            probe.unlink(missing_ok=True)
        hosts = sorted({w["host"] for w in who})
        self.log(f"engine ray: {self.workers} worker(s) x {self.threads} thread(s) on {', '.join(hosts)} "
                 f"(pids {', '.join(str(w['pid']) for w in who)})")
        self.idle = list(self.actors)

    def _get(self, refs: Any) -> Any:
        """``ray.get`` that re-raises an error of zsl's own code as itself (as a local run would)."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise

    # -- handing out chunks -------------------------------------------------------------
    def label(self, ci: int, chunk: list[Item | BadRow], dup: dict[int, str], tick: Callable[[int], None]) -> None:
        """Give chunk ``ci`` to the next free worker (waiting for one)."""
        self.records[ci] = len(chunk)
        self._submit("label", ci, chunk, dup, 1, tick)

    def retry(self, ci: int, chunk: list[Item | BadRow], tick: Callable[[int], None]) -> None:
        """Have a worker retry the transient failures of finished chunk ``ci``."""
        self._submit("retry", ci, chunk, {}, 1, tick)

    def _submit(self, kind: str, ci: int, chunk: list[Item | BadRow], dup: dict[int, str], attempt: int,
                tick: Callable[[int], None]) -> None:
        while not self.idle:
            self._collect(tick)
        actor = self.idle.pop()
        ref = actor.label.remote(ci, chunk, dup) if kind == "label" else actor.retry.remote(ci, chunk)
        self.pending[ref] = (actor, kind, ci, chunk, dup, attempt)

    def wait(self, tick: Callable[[int], None]) -> None:
        """Wait for every chunk handed out; raise if some could not be labelled."""
        while self.pending:
            self._collect(tick)
        self._progress(tick)
        if self.failed:
            shown = "; ".join(f"chunk {ci}: {why}" for ci, why in sorted(self.failed.items())[:5])
            raise ZslError(f"{len(self.failed)} chunk(s) could not be labelled ({shown}). The other chunks are saved. "
                           "Fix: run the same command again to retry them.")

    def _progress(self, tick: Callable[[int], None]) -> None:
        for ci, n in self._get(self.progress.take.remote()).items():
            before = self.shown.get(ci, 0)
            now = min(before + n, self.records.get(ci, before + n))
            if now > before:
                tick(now - before)
            self.shown[ci] = now

    def _collect(self, tick: Callable[[int], None]) -> None:
        ray = self.ray
        ready, _ = ray.wait(list(self.pending), num_returns=1, timeout=0.5)
        self._progress(tick)
        for ref in ready:
            actor, kind, ci, chunk, dup, attempt = self.pending.pop(ref)
            try:
                self._get(ref)
            except ray.exceptions.RayActorError as exc:
                why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                self.log(f"chunk {ci}: the worker died while labelling it (try {attempt} of {TRIES}): {why}")
                # Ray restarts it; hand it work only once it answers again: a task sent to a worker that is
                # still restarting is refused at once (ActorUnavailableError), and on a busy machine three
                # quick resubmits all were, failing the chunk without it ever running again (seen in CI)
                if not self._await_restart(actor):
                    self.log(f"chunk {ci}: the worker did not come back within {RESTART_WAIT:.0f} s")
                self.idle.append(actor)
                if attempt < TRIES:
                    self._submit(kind, ci, chunk, dup, attempt + 1, tick)
                else:
                    self.failed[ci] = f"the worker died {TRIES} times ({why})"
                continue
            self.idle.append(actor)
            if kind == "label":
                self._progress(tick)
                left = self.records.get(ci, 0) - self.shown.get(ci, 0)
                if left > 0:
                    tick(left)
                self.shown[ci] = self.records.get(ci, 0)
                self.committed += 1
                if os.environ.get(FAULT_DRIVER) == str(self.committed):
                    os.kill(os.getpid(), signal.SIGKILL)

    def _await_restart(self, actor: Any, timeout: float = RESTART_WAIT) -> bool:
        """Wait until a restarting worker answers again; False if it does not within ``timeout`` seconds."""
        ray = self.ray
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                ray.get(actor.__ray_ready__.remote(), timeout=max(0.1, deadline - time.monotonic()))
                return True
            except ray.exceptions.ActorUnavailableError:
                time.sleep(0.5)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                return False
        return False

    def close(self) -> None:
        """Stop the workers (and Ray, if this run started it)."""
        ray = self.ray
        for actor in [*getattr(self, "actors", []), *([self.progress] if hasattr(self, "progress") else [])]:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001,S110 - already gone
                pass
        if self.started_ray:
            ray.shutdown()
            self.started_ray = False
