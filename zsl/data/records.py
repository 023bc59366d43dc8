"""Reading items to label: every input format as one stream of :class:`~zsl.data.files.Item` records.

Readers stream ``Item`` records and report bad rows instead of stopping: each bad row
becomes a :class:`~zsl.data.files.BadRow` (file, line, reason) and the rest of the file is
still read. :func:`input_format` tells the formats apart; images are listed by
:mod:`zsl.data.images`.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from zsl.data.files import BadRow, Item, decoded_lines, iter_jsonl, iter_jsonl_file
from zsl.data.images import IMAGE_EXTENSIONS
from zsl.errors import InputError

__all__ = ["TABLE_SUFFIXES", "TEXT_SUFFIXES", "check_regular_input", "count_records", "fingerprint",
           "fingerprint_and_count", "input_format", "iter_records", "read_items"]


def _has_surrogates(values: Iterable[Any]) -> bool:
    return any(isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


TEXT_SUFFIXES = (".txt",)
TABLE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")


def _supported() -> str:
    return (f"{', '.join(TABLE_SUFFIXES + TEXT_SUFFIXES)} (one item per line), a folder of images, an image file "
            f"({', '.join(IMAGE_EXTENSIONS)}) or a Hugging Face dataset saved with save_to_disk")


def input_format(path: str | os.PathLike[str]) -> str:
    """The kind of an input: ``jsonl``, ``json`` (an array of records), ``csv``, ``tsv``,
    ``parquet``, ``hf`` (a Hugging Face ``datasets`` dataset saved with ``save_to_disk``),
    ``images`` or ``text`` (``.txt``).

    The suffix decides; any other suffix (``.svg``, ``.pdf``, ``.gz``, none ...) is refused
    rather than read line by line as text.

    Raises:
        InputError: the path does not exist, a folder is neither a saved dataset nor holds
            images, the suffix is not a supported one, or a ``.parquet`` file is empty or
            not Parquet.
    """
    p = Path(path)
    if p.is_dir():
        if (p / "state.json").is_file():
            return "hf"
        if (p / "dataset_dict.json").is_file():
            splits = json.loads((p / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
            raise InputError(f"{p} is a saved DatasetDict with splits {splits}; label one split: "
                             f"{p / (splits[0] if splits else 'SPLIT')}")
        return "images"
    if not p.exists():
        raise InputError(f"Input {p} does not exist.")
    suffix = p.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "images"
    if suffix == ".jsonl":
        return "images" if _first_record_is_image(p) else "jsonl"
    if suffix == ".parquet":
        _check_parquet_magic(p)
    if suffix in (".json", ".csv", ".tsv", ".parquet"):
        return suffix[1:]
    if suffix in TEXT_SUFFIXES:
        return "text"
    raise InputError(f"{p}: cannot read {'files ending in ' + repr(suffix) if suffix else 'a file without a suffix'} "
                     f"as items. Supported: {_supported()}. Fix: convert the file, or rename a plain-text file "
                     "to .txt to label it one line per item.")


def _check_parquet_magic(p: Path) -> None:
    """A Parquet file starts and ends with b"PAR1"; anything else would fail deep inside pyarrow."""
    size = p.stat().st_size
    if size == 0:
        raise InputError(f"Input file {p} is empty.")
    with p.open("rb") as fh:
        head = fh.read(4)
        fh.seek(max(0, size - 4))
        tail = fh.read(4)
    if head != b"PAR1" or tail != b"PAR1" or size < 12:
        raise InputError(f"{p} is not a Parquet file (a Parquet file starts and ends with the bytes 'PAR1'; this "
                         f"one starts with {head!r}{' and is cut short' if head == b'PAR1' else ''}). Fix: write it "
                         "again with pyarrow/pandas (df.to_parquet), or give it the suffix of its real format.")


def _first_record_is_image(p: Path) -> bool:
    """A JSONL whose first record has an "image" field and no "text" field lists images."""
    with p.open(encoding="utf-8", errors="replace") as fh:
        for _, obj, err in iter_jsonl(fh):
            return err is None and isinstance(obj, dict) and "image" in obj and "text" not in obj
    return False


def _keys(obj: dict[str, Any], limit: int = 12) -> str:
    keys = [repr(k) for k in obj]
    return (", ".join(keys[:limit]) + (f" ... ({len(keys)} keys)" if len(keys) > limit else "")) or "no keys"


def _obj_record(obj: Any, where: tuple[str, int], text_field: str, id_field: str, default_id: str) -> Item | BadRow:
    """One JSON object / table row as an :class:`Item`, or the :class:`BadRow` saying why not.

    Ids are strings. The rule, the same one ``zsl eval`` uses to join predictions with gold:

    * a string id is kept verbatim;
    * an integer id (``7``) becomes its decimal string (``"7"``), so ``7`` and ``"7"`` are the
      *same* id: a file holding both has a duplicate, reported as such by ``zsl.runs.label``;
    * any other JSON value (``true``, ``1.5``, a list, an object) is refused as a bad row;
    * a row without an id (absent, ``null`` or ``""``) gets ``default_id``, its line or row
      number. That can equal a real id of another row (a row ``{"id": "3"}`` and the row on
      line 3 without one); ``zsl.runs.label`` then reports the later one as a duplicate id. Give
      every row an id, or none, to avoid it.
    """
    path, line = where
    if not isinstance(obj, dict):
        return BadRow(path, line, f"expected a JSON object, got {type(obj).__name__}")
    text = obj.get(text_field)
    if text_field not in obj:
        return BadRow(path, line, f"no '{text_field}' field (the row has {_keys(obj)}). "
                                  "Fix: pass --text-field with the key that holds the text")
    if text is None:
        return BadRow(path, line, f"'{text_field}' is null")
    if not isinstance(text, str):
        return BadRow(path, line, f"'{text_field}' must be a string, got {type(text).__name__} ({text!r:.40})")
    if not text.strip():
        return BadRow(path, line, f"empty '{text_field}' field")
    gold = obj.get("labels")
    if gold is not None and (isinstance(gold, str) or not isinstance(gold, list)
                             or not all(isinstance(g, str) for g in gold)):
        return BadRow(path, line, "'labels' must be a list of strings")
    raw_id = obj.get(id_field)
    if raw_id is None or raw_id == "":
        item_id = default_id
    elif isinstance(raw_id, str) or (isinstance(raw_id, int) and not isinstance(raw_id, bool)):
        item_id = str(raw_id)
    else:
        return BadRow(path, line, f"'{id_field}' must be a string or an integer, got {type(raw_id).__name__} "
                                  f"({raw_id!r:.40}). Fix: store ids as strings")
    meta = {k: v for k, v in obj.items() if k not in (text_field, "labels", id_field)}
    return Item(item_id, text, gold, meta)


def iter_records(path: str | os.PathLike[str], *, text_field: str = "text", id_field: str = "id"
                 ) -> Iterator[Item | BadRow]:
    """Stream every record of an input, good (:class:`Item`) or bad (:class:`BadRow`), in file order.

    One record per non-blank line (``.jsonl``, ``.txt``), element of a ``.json`` array (objects
    like JSONL lines, or plain strings; the file is read whole), CSV row, Parquet row or row
    of a saved Hugging Face dataset. Bad records (malformed JSON, bytes that are not UTF-8, a CSV
    row with missing or extra fields, an empty text) come back as :class:`BadRow` in their
    place, so record positions are stable: ``zsl.runs.label`` uses them to resume. Nothing is
    loaded whole.

    Args:
        path: the input (see :func:`input_format`; image inputs are read by :mod:`zsl.data.images`).
        text_field: JSON key / column with the text.
        id_field: JSON key / column with the item id (default: the line or row number; see
            :func:`_obj_record` for the id rule).

    Raises:
        InputError: the input is missing, empty or of an unsupported kind, has no text column
            at all, or is a ``.json`` file that is not an array of records.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.jsonl"
        >>> _ = f.write_text('{"id": "a", "text": "hello"}\\n{oops\\n')
        >>> [type(r).__name__ for r in iter_records(f)]
        ['Item', 'BadRow']
    """
    p = Path(path)
    fmt = input_format(p)
    if fmt == "images":
        raise InputError(f"{p} holds images; label it with `zsl label` (zsl.runs.label.label_run) or zsl.image.tagger.ImageTagger.")
    if fmt == "hf":
        yield from _iter_arrow(p, text_field, id_field)
        return
    if p.stat().st_size == 0:
        raise InputError(f"Input file {p} is empty.")
    if fmt == "parquet":
        yield from _iter_parquet(p, text_field, id_field)
    elif fmt == "json":
        yield from _iter_json_array(p, text_field, id_field)
    elif fmt in ("csv", "tsv"):
        yield from _iter_csv_records(p, fmt, text_field, id_field)
    else:
        yield from _iter_lines(p, fmt, text_field, id_field)


def _iter_lines(p: Path, fmt: str, text_field: str, id_field: str) -> Iterator[Item | BadRow]:
    if fmt == "text":
        for ln, line, err in decoded_lines(p):
            yield BadRow(str(p), ln, err) if err is not None else Item(str(ln), line)
        return
    for ln, obj, err in iter_jsonl_file(p):
        yield BadRow(str(p), ln, err) if err is not None else _obj_record(obj, (str(p), ln), text_field, id_field,
                                                                            str(ln))


def _iter_json_array(p: Path, text_field: str, id_field: str) -> Iterator[Item | BadRow]:
    """A ``.json`` file holding one array; BadRow.line is the 1-based position in the array."""
    raw = p.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"{p} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}). "
                         "Fix: re-save the file as UTF-8.") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{p} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). Fix: repair "
                         "the file, or write one JSON object per line as .jsonl (a bad line is then skipped alone).") \
            from None
    if not isinstance(data, list):
        raise InputError(f"{p} holds a JSON {type(data).__name__}; a .json input must be an array of records "
                         f'([{{"{text_field}": "...", "{id_field}": "..."}}, ...]) or of strings. Fix: extract the array, '
                         "or write one object per line as .jsonl.")
    for n, obj in enumerate(data, 1):
        if isinstance(obj, str):
            yield Item(str(n), obj) if obj.strip() else BadRow(str(p), n, "empty text")
        else:
            yield _obj_record(obj, (str(p), n), text_field, id_field, str(n))


def _iter_csv_records(p: Path, fmt: str, text_field: str, id_field: str) -> Iterator[Item | BadRow]:
    with p.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ",")
        fields = reader.fieldnames
        if not fields or text_field not in fields:
            raise InputError(f"{p}: the header has no '{text_field}' column (found {fields}). "
                             "Fix: rename the column or pass --text-field.")
        for row in reader:
            ln = reader.line_num
            if None in row:
                yield BadRow(str(p), ln, f"row has more fields than the header's {len(fields)}")
                continue
            if any(v is None for v in row.values()):
                missing = [k for k, v in row.items() if v is None]
                yield BadRow(str(p), ln, f"row has fewer fields than the header (missing {', '.join(missing)})")
                continue
            if _has_surrogates(row.values()):
                yield BadRow(str(p), ln, "not UTF-8 text; re-save the file as UTF-8")
                continue
            obj: dict[str, Any] = dict(row)
            if "labels" in obj:
                obj["labels"] = [s for s in obj["labels"].split("|") if s]
            yield _obj_record(obj, (str(p), ln), text_field, id_field, str(ln))


def _batches_to_records(batches: Iterable[Any], p: Path, text_field: str, id_field: str
                        ) -> Iterator[Item | BadRow]:
    n = 0
    for batch in batches:
        for obj in batch.to_pylist():
            n += 1
            yield _obj_record(obj, (str(p), n), text_field, id_field, str(n))


def _iter_parquet(p: Path, text_field: str, id_field: str) -> Iterator[Item | BadRow]:
    pq = _pyarrow_module("pyarrow.parquet", "Reading Parquet")
    try:
        pf = pq.ParquetFile(p)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise InputError(f"{p} is not a readable Parquet file ({exc}).") from None
    names = pf.schema_arrow.names
    if text_field not in names:
        raise InputError(f"{p}: no '{text_field}' column (found {names}). Fix: pass --text-field.")
    cols = [c for c in (text_field, id_field, "labels") if c in names]
    yield from _batches_to_records(pf.iter_batches(batch_size=1024, columns=cols), p, text_field, id_field)


def _iter_arrow(p: Path, text_field: str, id_field: str) -> Iterator[Item | BadRow]:
    """A dataset saved by ``datasets.Dataset.save_to_disk``: Arrow stream shards listed in state.json."""
    pa = _pyarrow_module("pyarrow", "Reading a saved Hugging Face dataset")
    state = json.loads((p / "state.json").read_text(encoding="utf-8"))
    files = [p / f["filename"] for f in state.get("_data_files", [])]
    if not files:
        raise InputError(f"{p}/state.json lists no data files; is it a dataset saved with save_to_disk?")

    def batches() -> Iterator[Any]:
        for f in files:
            with pa.memory_map(str(f)) as src:
                reader = pa.ipc.open_stream(src)
                names = reader.schema.names
                if text_field not in names:
                    raise InputError(f"{p}: no '{text_field}' column (found {names}). Fix: pass --text-field.")
                cols = [c for c in (text_field, id_field, "labels") if c in names]
                for batch in reader:
                    yield batch.select(cols)

    yield from _batches_to_records(batches(), p, text_field, id_field)


def _pyarrow_module(name: str, feature: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        from zsl.errors import MissingDependencyError

        raise MissingDependencyError("pyarrow", feature) from None


def check_regular_input(path: str | os.PathLike[str]) -> None:
    """Refuse an input that is a pipe, a device or a socket, without opening it.

    zsl reads an input more than once (format, fingerprint, the records, and a last
    fingerprint to catch a file that changed during a run), which a stream cannot give:
    a FIFO or ``<(...)`` would block forever or yield its data only once. A folder (of
    images, or a saved Hugging Face dataset) is fine; a missing path is left to
    :func:`input_format` to report.

    Raises:
        InputError: ``path`` is not a regular file or a folder.

    Example:
        >>> try:
        ...     check_regular_input("/dev/null")
        ... except InputError as exc:
        ...     print(str(exc).split(":")[0])
        Input /dev/null is a character device, not a regular file
    """
    import stat

    p = Path(path)
    try:
        mode = p.stat().st_mode  # stat never blocks, unlike opening a FIFO
    except OSError:
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = ("a named pipe (FIFO; also what <(...) and /dev/stdin give)" if stat.S_ISFIFO(mode)
            else "a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
    raise InputError(f"Input {p} is {kind}, not a regular file: zsl reads its input more than once (to resume a "
                     f"run and to check it did not change). Fix: write the stream to a file first, e.g. "
                     f"`your-command > items.jsonl`, and label that file.")


def _count_lines(chunks: Iterable[bytes]) -> int:
    """Non-blank lines in a byte stream (a UTF-8 BOM alone counts as blank), as in :func:`count_records`."""
    n, tail = 0, b""
    for chunk in chunks:
        lines = (tail + chunk).split(b"\n")
        tail = lines.pop()
        n += sum(1 for raw in lines if raw.strip() and raw.strip() != b"\xef\xbb\xbf")
    return n + (1 if tail.strip() and tail.strip() != b"\xef\xbb\xbf" else 0)


def _read_blocks(p: Path) -> Iterator[bytes]:
    with p.open("rb") as fh:
        while block := fh.read(1 << 20):
            yield block


def count_records(path: str | os.PathLike[str]) -> int | None:
    """How many records :func:`iter_records` will yield (cheap: no parsing), or None if unknown."""
    p = Path(path)
    fmt = input_format(p)
    if fmt in ("jsonl", "text"):
        return _count_lines(_read_blocks(p))
    return _count_other(p, fmt)


def _count_other(p: Path, fmt: str) -> int | None:
    if fmt == "parquet":
        return _pyarrow_module("pyarrow.parquet", "Reading Parquet").ParquetFile(p).metadata.num_rows
    if fmt == "hf":
        info = json.loads((p / "dataset_info.json").read_text(encoding="utf-8")) if (p / "dataset_info.json").is_file() else {}
        splits = info.get("splits") or {}
        total = sum(int(s.get("num_examples", 0)) for s in splits.values()) if isinstance(splits, dict) else 0
        return total or None
    return None


def fingerprint(path: str | os.PathLike[str]) -> str:
    """A content hash of a file (sha256, streamed), or of a folder's file names, sizes and
    modification times. Used to refuse resuming a run whose input changed."""
    return fingerprint_and_count(path, None)[0]


def fingerprint_and_count(path: str | os.PathLike[str], fmt: str | None) -> tuple[str, int | None]:
    """:func:`fingerprint` and, for ``fmt`` (an :func:`input_format` value), :func:`count_records`,
    in one read of the file. The count is None when ``fmt`` is None or the format has no cheap count.

    Example:
        >>> import tempfile, pathlib
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.txt"
        >>> _ = f.write_text("one\\n\\ntwo\\n")
        >>> fp, n = fingerprint_and_count(f, "text")
        >>> fp.startswith("sha256:"), n, fp == fingerprint(f)
        (True, 2, True)
    """
    import hashlib

    p = Path(path)
    h = hashlib.sha256()
    if p.is_dir():
        for f in sorted(x for x in p.rglob("*") if x.is_file()):
            st = f.stat()
            h.update(f"{f.relative_to(p)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))
        return "dir:" + h.hexdigest()[:32], _count_other(p, fmt) if fmt else None

    def hashed() -> Iterator[bytes]:
        for block in _read_blocks(p):
            h.update(block)
            yield block

    if fmt in ("jsonl", "text"):
        count: int | None = _count_lines(hashed())
    else:
        for _ in hashed():
            pass
        count = _count_other(p, fmt) if fmt else None
    return "sha256:" + h.hexdigest()[:32], count


def read_items(path: str | os.PathLike[str], *, text_field: str = "text", bad: list[BadRow] | None = None
               ) -> Iterator[Item]:
    """Stream the good items of an input; bad rows go to ``bad`` (see :func:`iter_records`).

    Args:
        path: ``.jsonl``, ``.json`` (an array), ``.csv``/``.tsv``, ``.parquet``, a saved
            Hugging Face dataset folder, or a ``.txt`` file (one item per line).
        text_field: JSON key / column holding the text.
        bad: a list that receives a :class:`BadRow` for each skipped row.

    Raises:
        InputError: the file is missing or empty, or a table without the text column.
    """
    for rec in iter_records(path, text_field=text_field):
        if isinstance(rec, BadRow):
            if bad is not None:
                bad.append(rec)
        else:
            yield rec
