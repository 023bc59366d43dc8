"""Reading and writing files: items to label, image files, JSON Lines, atomic writes.

* :mod:`zsl.data.files`: :class:`Item`, :class:`BadRow`, the JSON Lines reader
  (:func:`iter_jsonl`, :func:`iter_jsonl_file`) and the one atomic writer (:func:`atomic_write`);
* :mod:`zsl.data.records`: every input format as one stream of records (:func:`iter_records`,
  :func:`read_items`, :func:`input_format`, fingerprints and counts for runs);
* :mod:`zsl.data.images`: image files (listing, defensive decoding, a run's image inputs).

Everything is re-exported here: ``from zsl.data import read_items`` works as before. The rows
of ``labels.jsonl`` are :mod:`zsl.rows`.
"""

from zsl.data.files import (
    BadRow,
    Item,
    atomic_write,
    decoded_lines,
    fsync_dir,
    iter_jsonl,
    iter_jsonl_file,
    open_private,
    refuse_overwrite,
    write_jsonl_atomic,
    write_lines_atomic,
    write_text_atomic,
)
from zsl.data.images import (
    IMAGE_EXTENSIONS,
    SkippedImage,
    image_records,
    list_image_files,
    load_image,
    load_images,
    read_image_inputs,
)
from zsl.data.records import (
    TABLE_SUFFIXES,
    TEXT_SUFFIXES,
    check_regular_input,
    count_records,
    fingerprint,
    fingerprint_and_count,
    input_format,
    iter_records,
    read_items,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "TABLE_SUFFIXES",
    "TEXT_SUFFIXES",
    "BadRow",
    "Item",
    "SkippedImage",
    "atomic_write",
    "check_regular_input",
    "count_records",
    "decoded_lines",
    "fingerprint",
    "fingerprint_and_count",
    "fsync_dir",
    "image_records",
    "input_format",
    "iter_jsonl",
    "iter_jsonl_file",
    "iter_records",
    "list_image_files",
    "load_image",
    "load_images",
    "open_private",
    "read_image_inputs",
    "read_items",
    "refuse_overwrite",
    "write_jsonl_atomic",
    "write_lines_atomic",
    "write_text_atomic",
]
