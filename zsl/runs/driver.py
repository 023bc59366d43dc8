"""What every run driver does first and last, so that :func:`~zsl.runs.label.label_run`,
:func:`~zsl.runs.label.estimate_run` and :func:`~zsl.runs.budget.budget_run` differ only in how they label.

The opening (:func:`open_run`): check the settings and the input, read the vocabulary, build the
labeller; then (:meth:`Run.open_dir`) write the manifest and take the run directory and its lock.
The closing: :meth:`Run.write_outputs` (labels, errors, the vocabulary beside the labels),
:meth:`Run.finish` (the summary) and :func:`reopen_summary` (the summary of a run already complete).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zsl.data.records import check_regular_input, input_format
from zsl.errors import InputError
from zsl.rows import run_meta
from zsl.runs.labeller import Labeller, LabelSettings, make_labeller
from zsl.runs.rundir import ERRORS, LABELS, META, SUMMARY, RunDir, make_manifest, write_json, write_lines
from zsl.vocab import LabelVocab

__all__ = ["Run", "load_vocab", "open_run", "reopen_summary", "run_settings"]


def run_settings(settings: LabelSettings | None, overrides: dict[str, Any]) -> LabelSettings:
    """``settings`` (default :class:`~zsl.runs.labeller.LabelSettings`) with ``overrides`` by name, checked."""
    opts = (settings or LabelSettings()).updated(**overrides)
    opts.check()
    return opts


def load_vocab(labels: str | os.PathLike[str] | LabelVocab | Sequence[str], warnings: list[str]) -> tuple[LabelVocab, str | None]:
    """A run's vocabulary and the resolved path of its file (None when given in memory); blank
    lines and repeated labels in a file are dropped and reported in ``warnings``."""
    if isinstance(labels, LabelVocab):
        return labels, None
    if isinstance(labels, (str, os.PathLike)):
        problems: list[str] = []
        vocab = LabelVocab.from_file(labels, dedupe=True, problems=problems)
        warnings.extend(problems)
        return vocab, str(Path(labels).resolve())
    return LabelVocab(labels), None


@dataclass
class Run:
    """What a driver labels with (from :func:`open_run`), then where it writes (from :meth:`open_dir`).

    Attributes:
        opts: the checked settings.
        input_path, fmt: the input and its format (:func:`zsl.data.records.input_format`).
        vocab, vocab_path: the labeller's vocabulary and its file's resolved path (None in memory).
        labeller: the :class:`~zsl.runs.labeller.Labeller`.
        warnings: what the vocabulary and the labeller reported; drivers add theirs.
        rd, manifest, state, restarted: set by :meth:`open_dir`.
    """

    opts: LabelSettings
    input_path: Path
    fmt: str
    vocab: LabelVocab
    vocab_path: str | None
    labeller: Labeller
    warnings: list[str]
    rd: RunDir | None = None
    manifest: dict[str, Any] | None = None
    state: str = ""
    restarted: bool = False

    def run_path(self, out: str | os.PathLike[str] | None) -> Path:
        """The run directory: ``out``, else ``<input>.zsl`` beside the input."""
        return Path(out) if out is not None else self.input_path.with_name(self.input_path.name.rstrip("/") + ".zsl")

    def open_dir(self, settings_record: dict[str, Any], fingerprint: str, out: str | os.PathLike[str] | None,
                 fresh: bool, *, extra: dict[str, Any] | None = None,
                 restart_if: Callable[[Path, dict[str, Any]], bool] | None = None) -> RunDir:
        """Make the manifest and take the run directory (default ``<input>.zsl/``) and its lock.

        ``extra`` goes into the manifest as is; ``restart_if(run_path, manifest)``, when true (and
        ``fresh`` is not), starts the directory afresh as ``fresh`` would (:attr:`restarted`).
        The caller must ``rd.unlock()`` when done (``try``/``finally``).
        """
        opts = self.opts
        runtime = {"concurrency": self.labeller.concurrency, "timeout": opts.timeout, "retries": opts.retries}
        self.manifest = make_manifest(self.input_path, self.fmt, opts.text_field, opts.id_field, self.vocab,
                                      self.vocab_path, settings_record, runtime, fingerprint)
        self.manifest.update(extra or {})
        run_path = self.run_path(out)
        self.rd = RunDir(run_path)
        self.restarted = not fresh and restart_if is not None and restart_if(run_path, self.manifest)
        self.state = self.rd.prepare(self.manifest, fresh or self.restarted)
        return self.rd

    def write_outputs(self, rows: Iterable[str], errors: Iterable[str], settings_record: dict[str, Any],
                      n_items: Callable[[], int], provenance: dict[str, Any] | None = None) -> None:
        """Write ``labels.jsonl`` and ``errors.jsonl`` (lines, consumed in this order) and the vocabulary with
        the run's provenance beside the labels; ``n_items()`` is asked once both are written."""
        assert self.rd is not None and self.manifest is not None
        path = self.rd.path
        write_lines(path / LABELS, rows)
        write_lines(path / ERRORS, errors)
        prov = {"zsl_version": self.manifest["zsl_version"], **settings_record, **(provenance or {})}
        write_json(path / META, run_meta(self.vocab, k=settings_record["k"], top_scores=settings_record["top_scores"],
                                         provenance=prov, n_items=n_items(), rule=settings_record.get("rule")))

    def finish(self, summary: Any, retry_note: str) -> None:
        """Write ``summary.json``; with items to retry, log ``retry_note`` (``{n}``: how many)."""
        assert self.rd is not None
        write_json(self.rd.path / SUMMARY, summary.to_dict())
        if summary.retryable:
            self.rd.log(retry_note.format(n=summary.retryable))


def open_run(input: str | os.PathLike[str], labels: str | os.PathLike[str] | LabelVocab | Sequence[str] | None,
             opts: LabelSettings, *, check: Callable[[str], None] | None = None) -> Run:
    """The opening every driver shares: the input (a regular file or folder), its format, the vocabulary and
    the labeller. ``check(fmt)`` refuses what a driver cannot label, before the vocabulary is read.

    Raises:
        InputError: an input that is not a regular file or folder, no vocabulary (and no student), or what
            ``check`` or :func:`~zsl.runs.labeller.make_labeller` refuse.
    """
    input_path = Path(input)
    check_regular_input(input_path)  # before anything opens it: opening a FIFO blocks
    fmt = input_format(input_path)
    if check is not None:
        check(fmt)
    warnings: list[str] = []
    if labels is None and opts.model is None:
        raise InputError("A label vocabulary is required (or model=, a distilled student, which has its own).")
    vocab, vocab_path = load_vocab(labels, warnings) if labels is not None else (None, None)
    labeller = make_labeller(fmt, vocab, opts)
    return Run(opts, input_path, fmt, labeller.vocab, vocab_path, labeller, warnings + labeller.warnings)


def reopen_summary(cls: type, run_path: Path) -> Any:
    """The summary (of class ``cls``) of a run already complete in ``run_path``, marked ``already_complete``."""
    summary = cls(**json.loads((run_path / SUMMARY).read_text(encoding="utf-8")))
    # The paths in summary.json are where the run was written; a moved or copied run is here now.
    summary.run_dir, summary.labels, summary.errors = str(run_path), str(run_path / LABELS), str(run_path / ERRORS)
    summary.already_complete = True
    return summary
