"""Reading and writing files: items to label, image files, JSON Lines, atomic writes.

* :mod:`zsl.data.files`: :class:`Item`, :class:`BadRow`, the JSON Lines reader
  (:func:`iter_jsonl`, :func:`iter_jsonl_file`) and the one atomic writer (:func:`atomic_write`);
* :mod:`zsl.data.records`: every input format as one stream of records (:func:`iter_records`,
  :func:`read_items`, :func:`input_format`, fingerprints and counts for runs);
* :mod:`zsl.data.images`: image files (listing, defensive decoding, a run's image inputs).

The face offers the reading side for users (``from zsl.data import read_items``); code inside
zsl imports each name from the module that defines it. The rows of ``labels.jsonl`` are
:mod:`zsl.rows`.
"""

from zsl.data.files import BadRow, Item, atomic_write, iter_jsonl
from zsl.data.images import list_image_files, load_image, load_images
from zsl.data.records import input_format, iter_records, read_items

__all__ = ["BadRow", "Item", "atomic_write", "input_format", "iter_jsonl", "iter_records", "list_image_files",
           "load_image", "load_images", "read_items"]
