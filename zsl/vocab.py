"""LabelVocab: the ordered label set every score matrix refers to.

Column ``j`` of every ``(N, K)`` score array in zsl is ``vocab.labels[j]``. Labels are
kept exactly as given (ESCO labels contain commas, quotes and stray spaces), so they are
never joined into one string and parsed back.

Example:
    >>> from zsl.vocab import LabelVocab
    >>> v = LabelVocab(["sports", "politics, national", "science"])
    >>> v.index("politics, national"), len(v)
    (1, 3)
    >>> v.to_multi_hot([["science"], []]).tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from zsl.errors import InputError, VocabularyError
from zsl.taxonomy import Taxonomy
from zsl.util.cache import content_hash

__all__ = ["DESCRIPTION_CHARS", "DESCRIPTION_WORDS", "TREE_SEP", "LabelVocab", "clean_description", "vocab_difference"]

# The budget of a description embedded with its label for retrieval. Sentence encoders
# mean-pool over tokens, so a long description drowns the label's own words; 48 words keep
# the label at roughly a tenth of the text or more and fit MiniLM's 128-token training
# length. ESCO skill descriptions have a median of 19 words and a 99th percentile of 58,
# so about 2.5% of them are cut. The character budget catches text with few spaces.
DESCRIPTION_WORDS = 48
TREE_SEP = " > "  # the separator of a path's names (LabelVocab.from_file(..., tree_sep=))
DESCRIPTION_CHARS = 400
_CUT = "\u2026"  # an ellipsis marks a cut description
_WORD = re.compile(r"\w+")


def clean_description(label: str, description: object, *, max_words: int = DESCRIPTION_WORDS,
                      max_chars: int = DESCRIPTION_CHARS) -> tuple[str | None, bool]:
    r"""A label's description ready to show a model, and whether it was cut.

    Runs of whitespace (newlines, tabs) become one space. ``None``, an empty or
    whitespace-only description, and one that only repeats the label (Reuters has
    ``alum: alum`` and ``castor-oil: castor oil``; compared word by word, ignoring case and
    punctuation) count as no description. A longer
    one keeps its first ``max_words`` words, then at most ``max_chars`` characters (cut at
    a space when there is one in the last third), and ends in an ellipsis. Quotes and other
    characters are kept.

    Args:
        label: the label the description belongs to.
        description: the raw description (non-strings are converted with ``str``).
        max_words, max_chars: the budget.

    Returns:
        ``(text, cut)``: the cleaned text or None, and True when it was shortened.

    Example:
        >>> clean_description("acq", "Mergers/Acquisitions\n(M&A)")
        ('Mergers/Acquisitions (M&A)', False)
        >>> clean_description("x", "one two three four", max_words=2)
        ('one two…', True)
        >>> clean_description("Alum", " alum "), clean_description("castor-oil", "castor oil")
        ((None, False), (None, False))
    """
    if description is None:
        return None, False
    words = str(description).split()
    if not words or _WORD.findall(" ".join(words).casefold()) == _WORD.findall(label.casefold()):
        return None, False
    cut = len(words) > max_words
    text = " ".join(words[:max_words])
    if len(text) > max_chars:
        cut = True
        text = text[:max_chars]
        space = text.rfind(" ")
        if space > max_chars * 2 // 3:
            text = text[:space]
    return (text.rstrip() + _CUT if cut else text), cut


@dataclass(frozen=True)
class LabelVocab:
    """An ordered, duplicate-free list of labels with optional descriptions and priors.

    Args:
        labels: the label strings, in column order. Kept verbatim.
        descriptions: one optional description per label (``None`` or ``""`` for none).
        priors: one non-negative weight per label (e.g. label frequency); normalised to
            sum to 1 when given.
        name: a human name for reports.
        parents: for a hierarchy, the parent label of each label (``None`` for roots).
            Every parent must itself be a label; cycles are refused.
        catch_all: the labels that mean "none of the others" (``neutral``, ``other``): scored
            from the absence of evidence for the rest (:class:`zsl.scoring.CatchAll`). Not part
            of :attr:`hash` (it changes how sets are chosen, not the labels; runs record it).

    Raises:
        VocabularyError: empty vocabulary, non-string or blank labels, duplicates,
            descriptions/priors/parents of the wrong length, an unknown parent, or a cycle.
    """

    labels: tuple[str, ...]
    descriptions: tuple[str | None, ...] | None = None
    priors: tuple[float, ...] | None = None
    name: str = ""
    parents: tuple[str | None, ...] | None = None
    catch_all: tuple[str, ...] = ()
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __init__(self, labels: Iterable[str], descriptions: Sequence[str | None] | None = None,
                 priors: Sequence[float] | Mapping[str, float] | None = None, name: str = "",
                 parents: Sequence[str | None] | Mapping[str, str | None] | None = None,
                 catch_all: Iterable[str] | None = None):
        if isinstance(labels, str):
            raise VocabularyError("LabelVocab expects a list of labels, got one string. Fix: LabelVocab([label, ...])")
        labs = tuple(labels)
        if not labs:
            raise VocabularyError("The label vocabulary is empty. Give at least one label.")
        for i, lab in enumerate(labs):
            if not isinstance(lab, str):
                raise VocabularyError(f"Label {i} is {type(lab).__name__} ({lab!r:.60}); labels must be strings.")
            if not lab.strip():
                raise VocabularyError(f"Label {i} is blank. Remove blank labels from the vocabulary.")
        dups = [lab for lab, n in Counter(labs).items() if n > 1]
        if dups:
            shown = ", ".join(repr(d) for d in dups[:5])
            raise VocabularyError(
                f"The vocabulary has {len(dups)} duplicated label(s): {shown}{' ...' if len(dups) > 5 else ''}. "
                "Labels must be unique; remove the repeats (LabelVocab.from_file(..., dedupe=True) keeps the first)."
            )
        descs: tuple[str | None, ...] | None = None
        if descriptions is not None:
            descs = tuple(d if d else None for d in descriptions)
            if len(descs) != len(labs):
                raise VocabularyError(f"Got {len(descs)} descriptions for {len(labs)} labels; they must match 1:1.")
        pri: tuple[float, ...] | None = None
        if priors is not None:
            if isinstance(priors, Mapping):
                unknown = [k for k in priors if k not in set(labs)]
                if len(unknown) == len(priors):
                    raise VocabularyError("None of the prior keys are labels of this vocabulary.")
                arr = np.array([float(priors.get(lab, 0.0)) for lab in labs])
            else:
                arr = np.asarray(list(priors), dtype=float)
                if arr.shape != (len(labs),):
                    raise VocabularyError(f"Got {arr.size} priors for {len(labs)} labels; they must match 1:1.")
            if not np.all(np.isfinite(arr)) or np.any(arr < 0) or arr.sum() <= 0:
                raise VocabularyError("Priors must be finite, non-negative and not all zero.")
            pri = tuple((arr / arr.sum()).tolist())
        par, tree = _check_parents(labs, parents) if parents is not None else (None, None)
        object.__setattr__(self, "labels", labs)
        object.__setattr__(self, "parents", par)
        object.__setattr__(self, "descriptions", descs)
        object.__setattr__(self, "priors", pri)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "catch_all", _check_catch_all(labs, catch_all))
        object.__setattr__(self, "_index", {lab: i for i, lab in enumerate(labs)})
        if tree is not None:
            self.__dict__["tree"] = tree  # the cached `tree`: built once, while checking the parents

    def __len__(self) -> int:
        return len(self.labels)

    def __iter__(self):
        return iter(self.labels)

    def __getitem__(self, i: int) -> str:
        return self.labels[i]

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __repr__(self) -> str:
        extra = []
        if self.descriptions is not None:
            extra.append(f"{sum(d is not None for d in self.descriptions)} descriptions")
        if self.priors is not None:
            extra.append("priors")
        if self.parents is not None:
            extra.append("hierarchy")
        head = ", ".join(repr(lab) for lab in self.labels[:3])
        return f"LabelVocab({len(self)} labels: [{head}{', ...' if len(self) > 3 else ''}]{'; ' if extra else ''}{', '.join(extra)})"

    @cached_property
    def hash(self) -> str:
        """A content hash of labels, descriptions and priors (order matters)."""
        parts: list[str | list[str]] = ["labels", list(self.labels)]
        if self.descriptions is not None:
            parts += ["descriptions", [d or "" for d in self.descriptions]]
        if self.priors is not None:
            parts += ["priors", [f"{p:.12g}" for p in self.priors]]
        if self.parents is not None:
            parts += ["parents", [p or "" for p in self.parents]]
        return content_hash(*parts)

    def ancestors(self, label: str) -> list[str]:
        """The chain from the root down to ``label``'s parent (empty for a root or a flat vocabulary).

        Example:
            >>> v = LabelVocab(["science", "physics", "optics"], parents=[None, "science", "physics"])
            >>> v.ancestors("optics")
            ['science', 'physics']
        """
        if self.parents is None:
            return []
        chain: list[str] = []
        parent = self.parents[self.index(label)]
        while parent is not None:
            chain.append(parent)
            parent = self.parents[self._index[parent]]
        return chain[::-1]

    @cached_property
    def tree(self) -> Taxonomy | None:
        """The hierarchy as a :class:`~zsl.taxonomy.Taxonomy` (built once), or None for a flat vocabulary.

        Example:
            >>> v = LabelVocab(["science", "physics", "optics"], parents=[None, "science", "physics"])
            >>> v.tree.path_names("optics"), LabelVocab(["a"]).tree is None
            ('science > physics > optics', True)
        """
        if self.parents is None:
            return None
        return Taxonomy(self.labels, self.parents, index=self._index)

    def index(self, label: str) -> int:
        """Column of ``label``; raises a VocabularyError naming close matches if absent."""
        try:
            return self._index[label]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(label, self.labels, n=3)
            hint = f" Did you mean: {', '.join(repr(c) for c in close)}?" if close else ""
            raise VocabularyError(f"{label!r} is not in the vocabulary ({len(self)} labels).{hint}") from None

    def get(self, label: str) -> int | None:
        """Column of ``label``, or None."""
        return self._index.get(label)

    def prior_array(self) -> np.ndarray | None:
        return None if self.priors is None else np.asarray(self.priors, dtype=np.float64)

    def to_multi_hot(self, label_lists: Iterable[Iterable[str]], *, strict: bool = True) -> np.ndarray:
        """Turn lists of label names into an (N, K) 0/1 float32 matrix in vocabulary order.

        Args:
            label_lists: one iterable of label names per item.
            strict: raise on a label that is not in the vocabulary (else ignore it).
        """
        rows = list(label_lists)
        out = np.zeros((len(rows), len(self)), dtype=np.float32)
        for i, labs in enumerate(rows):
            if isinstance(labs, str):
                raise InputError(f"Item {i}: expected a list of labels, got the string {labs!r:.60}.")
            for lab in labs:
                j = self.index(lab) if strict else self._index.get(lab)
                if j is not None:
                    out[i, j] = 1.0
        return out

    @property
    def has_descriptions(self) -> bool:
        """True when at least one label has a usable description (see :func:`clean_description`).

        Example:
            >>> LabelVocab(["a", "b"], descriptions=["  ", "b"]).has_descriptions  # blank, or the label again
            False
        """
        if self.descriptions is None:
            return False
        return any(clean_description(lab, d)[0] is not None for lab, d in zip(self.labels, self.descriptions))

    def description(self, i: int, *, max_words: int = DESCRIPTION_WORDS, max_chars: int = DESCRIPTION_CHARS
                    ) -> str | None:
        """Label ``i``'s description, cleaned and cut to the budget (:func:`clean_description`), or None."""
        if self.descriptions is None:
            return None
        return clean_description(self.labels[i], self.descriptions[i], max_words=max_words, max_chars=max_chars)[0]

    def descriptions_cut(self, *, max_words: int = DESCRIPTION_WORDS, max_chars: int = DESCRIPTION_CHARS) -> int:
        """How many labels have a description longer than the budget (cut by :meth:`description`)."""
        if self.descriptions is None:
            return 0
        return sum(clean_description(lab, d, max_words=max_words, max_chars=max_chars)[1]
                   for lab, d in zip(self.labels, self.descriptions))

    def text_for(self, i: int, *, with_description: bool = False, max_words: int = DESCRIPTION_WORDS,
                 max_chars: int = DESCRIPTION_CHARS) -> str:
        r"""The text to embed for label ``i``: the label, or ``"label: description"``.

        The description is cleaned and cut as :func:`clean_description` says; a label
        without a usable one is embedded alone, exactly as given.

        Example:
            >>> v = LabelVocab(["acq", "earn"], descriptions=["Mergers/\nAcquisitions", None])
            >>> v.text_for(0, with_description=True), v.text_for(1, with_description=True), v.text_for(0)
            ('acq: Mergers/ Acquisitions', 'earn', 'acq')
        """
        lab = self.labels[i]
        desc = self.description(i, max_words=max_words, max_chars=max_chars) if with_description else None
        return lab if desc is None else f"{lab}: {desc}"

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, dedupe: bool = False, priors: str | os.PathLike[str] | None = None,
                  problems: list[str] | None = None, tree_sep: str = TREE_SEP) -> LabelVocab:
        """Read a vocabulary file.

        * ``.txt``: one label per line (lines end at ``\\n`` or ``\\r\\n`` only, so a label may
          hold U+2028 or U+0085; other spaces kept; blank lines skipped).
        * ``.jsonl``: objects with ``label`` and optional ``description`` and ``prior``.
        * ``.csv`` / ``.tsv``: a header with a ``label`` column, optional ``description``
          and ``prior`` columns.

        Either table form may have a ``catch_all`` field (``true``/``1``/``yes`` marks a label
        that means "none of the others", see :class:`zsl.scoring.CatchAll`) and a ``parent`` field naming each label's parent label (a
        hierarchy; roots leave it empty).

        A tree may also be written as paths or as parents with their children (issue #29):

        * a ``path`` instead of a ``label`` (a ``.csv``/``.tsv`` column or a ``.jsonl`` field:
          ``Geography > Bodies of water > Lakes``, or a list of names in ``.jsonl``); the nodes
          on the way are created, and the row's ``description`` and ``prior`` belong to its
          last node. Names are trimmed of surrounding spaces.
        * a ``.txt`` file whose lines hold ``tree_sep`` is a path per line.
        * a ``.txt`` file whose lines hold a tab, or a ``.tsv`` file whose first row has no
          ``label``/``path`` column, is the parent-then-children form
          (``parent<TAB>child1<TAB>child2 ...``; a parent may take several lines; a node that is
          nobody's child is a root).

        A name under two parents, a cycle, an unknown parent, an orphan (a path with an empty
        name, children without a parent) or a repeated label is refused with one
        :class:`~zsl.errors.VocabularyError` that names the file's lines (``dedupe`` keeps the first
        of labels repeated under the same parent).

        Files are UTF-8; a leading byte-order mark is ignored. A ``prior`` must be a
        non-negative number (empty or ``null``: 0).

        Args:
            path: the file.
            dedupe: keep the first of repeated labels instead of raising.
            priors: optional JSON file mapping label -> weight.
            problems: a list that receives one ``"file:line: reason"`` string per blank
                line or dropped repeat (with ``dedupe``), so callers can report them.
            tree_sep: the separator of the names of a path (default ``" > "``).

        Example:
            >>> import pathlib, tempfile
            >>> f = pathlib.Path(tempfile.mkdtemp()) / "tree.txt"
            >>> _ = f.write_text("Geography > Bodies of water > Lakes\\nGeography > Bodies of water > Seas\\n")
            >>> v = LabelVocab.from_file(f)
            >>> v.labels, v.tree.path_names("Seas")
            (('Geography', 'Bodies of water', 'Lakes', 'Seas'), 'Geography > Bodies of water > Seas')
        """
        p = Path(path)
        if p.is_dir():
            raise VocabularyError(f"The vocabulary {p} is a folder; give a .txt, .jsonl, .csv or .tsv file.")
        if not p.is_file():
            raise VocabularyError(f"Vocabulary file {p} does not exist.")
        cols = _VocabColumns()
        suffix = p.suffix.lower()
        try:
            if suffix == ".jsonl":
                _read_vocab_jsonl(p, cols, tree_sep)
            elif suffix in (".csv", ".tsv"):
                _read_vocab_table(p, suffix, cols, tree_sep)
            else:
                _read_vocab_txt(p, cols, tree_sep)
        except UnicodeDecodeError as exc:
            raise VocabularyError(f"{p} is not UTF-8 text ({exc.reason} at byte {exc.start}). Re-save it as UTF-8.") from None
        if cols.has_parent:
            _check_tree(cols, p, dedupe=dedupe)
        if problems is not None and cols.blank and suffix not in (".jsonl",):
            problems.append(f"{p}: {len(cols.blank)} blank line(s) skipped (line {', '.join(map(str, cols.blank[:10]))}"
                            f"{' ...' if len(cols.blank) > 10 else ''})")
        if dedupe:
            _drop_repeats(cols, p, problems)
        prior_arg: Sequence[float] | Mapping[str, float] | None = cols.pri if cols.has_prior else None
        if priors is not None:
            prior_arg = json.loads(Path(priors).read_text(encoding="utf-8"))
        return cls(cols.labels, cols.descs if cols.has_desc else None, prior_arg, name=p.stem,
                   parents=cols.par if cols.has_parent else None, catch_all=cols.catch_all)


@dataclass
class _VocabColumns:
    """What `LabelVocab.from_file` reads, column by column, with each label's line number and the blank lines."""

    labels: list[str] = field(default_factory=list)
    descs: list[str | None] = field(default_factory=list)
    pri: list[float] = field(default_factory=list)
    par: list[str | None] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    blank: list[int] = field(default_factory=list)
    catch_all: list[str] = field(default_factory=list)
    has_desc: bool = False
    has_prior: bool = False
    has_parent: bool = False
    # the path and parent-then-children forms: each node's column, whether a line named it itself (not
    # only on the way to another), and the problems met while reading ("line N: ...")
    node: dict[str, int] = field(default_factory=dict)
    explicit: list[bool] = field(default_factory=list)
    tree_problems: list[str] = field(default_factory=list)


def _read_vocab_jsonl(p: Path, cols: _VocabColumns, sep: str = " > ") -> None:
    """Read a ``.jsonl`` vocabulary: objects with a string ``label`` and optional ``description``, ``prior``,
    ``parent``; or with a ``path`` (a string of names joined by ``sep``, or a list of names)."""
    from zsl.data.files import iter_jsonl

    for ln, obj, err in iter_jsonl(_split_lines(p.read_text(encoding="utf-8-sig"))):
        if err:
            raise VocabularyError(f"{p}:{ln}: {err}.")
        if isinstance(obj, dict) and "label" not in obj and "path" in obj:
            names = obj["path"].split(sep) if isinstance(obj["path"], str) else obj["path"]
            if not isinstance(names, list) or not all(isinstance(x, str) for x in names):
                raise VocabularyError(f"{p}:{ln}: 'path' must be a string such as \"A{sep}B\" or a list of names.")
            _add_path(cols, names, ln, obj.get("description") or None, _prior(obj.get("prior"), p, ln))
            cols.has_prior |= "prior" in obj
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
            raise VocabularyError(f"{p}:{ln}: expected an object with a string 'label' field (or a 'path').")
        cols.labels.append(obj["label"])
        cols.lines.append(ln)
        cols.par.append(obj.get("parent") or None)
        cols.has_parent |= bool(obj.get("parent"))
        cols.descs.append(obj.get("description") or None)
        cols.has_desc |= bool(obj.get("description"))
        if _flag(obj.get("catch_all"), p, ln):
            cols.catch_all.append(obj["label"])
        if "prior" in obj:
            cols.has_prior = True
        cols.pri.append(_prior(obj.get("prior"), p, ln))


def _read_vocab_table(p: Path, suffix: str, cols: _VocabColumns, sep: str = " > ") -> None:
    """Read a ``.csv`` / ``.tsv`` vocabulary: a header with a ``label`` (or ``path``) column; rows without a
    label are blank. A ``.tsv`` whose first row names no known column is the parent-then-children form."""
    with p.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
        fields = reader.fieldnames or []
        if suffix == ".tsv" and fields and not set(fields) & _TABLE_COLUMNS:
            fh.seek(0)
            _read_children(p, _split_lines(fh.read().removeprefix("\ufeff")), cols)
            return
        if "label" not in fields and "path" in fields:
            _read_path_rows(p, reader, cols, sep)
            return
        if "label" not in fields:
            raise VocabularyError(f"{p}: needs a header with a 'label' (or 'path') column; found {reader.fieldnames}.")
        cols.has_desc = "description" in fields
        cols.has_prior = "prior" in fields
        cols.has_parent = "parent" in fields
        for row in reader:
            if not (row.get("label") or "").strip():
                if (row.get("parent") or "").strip():
                    cols.tree_problems.append(f"line {reader.line_num}: a row with the parent {row['parent']!r} and "
                                              "no label (an orphan). Fix: fill in its label or delete the row")
                cols.blank.append(reader.line_num)
                continue
            cols.labels.append(row["label"])
            cols.lines.append(reader.line_num)
            cols.par.append(row.get("parent") or None)
            cols.descs.append(row.get("description") or None)
            cols.pri.append(_prior(row.get("prior"), p, reader.line_num))
            if _flag(row.get("catch_all"), p, reader.line_num):
                cols.catch_all.append(row["label"])


def _read_vocab_txt(p: Path, cols: _VocabColumns, sep: str = " > ") -> None:
    """Read a ``.txt`` vocabulary: one label per line, blank lines skipped; lines with a tab are the
    parent-then-children form, lines with ``sep`` one path each."""
    lines = _split_lines(p.read_text(encoding="utf-8-sig"))
    if any("\t" in line for line in lines):
        _read_children(p, lines, cols)
        return
    if sep and any(sep in line for line in lines):
        for ln, line in enumerate(lines, 1):
            if line.strip():
                _add_path(cols, line.split(sep), ln, None, 0.0)
            else:
                cols.blank.append(ln)
        return
    for ln, line in enumerate(lines, 1):
        if line.strip():
            cols.labels.append(line)
            cols.lines.append(ln)
        else:
            cols.blank.append(ln)


_TABLE_COLUMNS = {"label", "path", "description", "prior", "parent"}


def _add_node(cols: _VocabColumns, name: str, parent: str | None, line: int) -> int:
    """Append a node (no description or prior yet) and return its column."""
    cols.node[name] = len(cols.labels)
    cols.labels.append(name)
    cols.par.append(parent)
    cols.lines.append(line)
    cols.descs.append(None)
    cols.pri.append(0.0)
    cols.explicit.append(False)
    return cols.node[name]


def _add_path(cols: _VocabColumns, names: list[str], line: int, desc: str | None, prior: float) -> None:
    """Add one path: the nodes on the way if new, then its last node with ``desc`` and ``prior``.

    A node met again under another parent, or a path given twice, is noted in ``cols.tree_problems``."""
    cols.has_parent = True
    names = [n.strip() for n in names]
    if not all(names):
        cols.tree_problems.append(f"line {line}: the path {' > '.join(names)!r} has an empty name (an orphan: "
                                  "a node without its parent). Fix: write every name from the root down")
        return
    parent: str | None = None
    for depth, name in enumerate(names):
        last = depth == len(names) - 1
        j = cols.node.get(name)
        if j is None:
            j = _add_node(cols, name, parent, line)
        elif cols.par[j] != parent:
            cols.tree_problems.append(_two_parents(name, (cols.par[j], cols.lines[j]), (parent, line)))
        elif last and cols.explicit[j]:
            cols.tree_problems.append(f"line {line}: {name!r} is repeated (first at line {cols.lines[j]}). "
                                      "Fix: delete the repeat")
        if last:
            cols.explicit[j] = True
            cols.descs[j], cols.pri[j] = desc or None, prior
            cols.has_desc |= bool(desc)
        parent = name


def _two_parents(name: str, first: tuple[str | None, int], second: tuple[str | None, int]) -> str:
    def under(parent: str | None) -> str:
        return "a root" if parent is None else f"under {parent!r}"

    return (f"line {second[1]}: {name!r} is {under(second[0])}, but line {first[1]} put it {under(first[0])} "
            "(a name under two parents). Fix: keep one, or rename one of them, e.g. 'Name (Parent)'")


def _read_path_rows(p: Path, reader: csv.DictReader, cols: _VocabColumns, sep: str) -> None:
    """The rows of a table with a ``path`` column (and optional ``description``, ``prior``)."""
    for row in reader:
        path = row.get("path") or ""
        if not path.strip():
            cols.blank.append(reader.line_num)
            continue
        _add_path(cols, path.split(sep), reader.line_num, row.get("description") or None,
                  _prior(row.get("prior"), p, reader.line_num))
    cols.has_prior = "prior" in (reader.fieldnames or [])


def _read_children(p: Path, lines: list[str], cols: _VocabColumns) -> None:
    """The parent-then-children form: ``parent<TAB>child1<TAB>child2 ...`` per line."""
    cols.has_parent = True
    placed: dict[str, int] = {}  # a node's line as somebody's child
    for ln, line in enumerate(lines, 1):
        cells = [c.strip() for c in line.split("\t")]
        parent, children = cells[0], [c for c in cells[1:] if c]
        if not parent:
            if children:
                cols.tree_problems.append(f"line {ln}: children {children[:3]} without a parent (an orphan: the line "
                                          "starts with a tab). Fix: write their parent first on the line")
            else:
                cols.blank.append(ln)
            continue
        if parent not in cols.node:
            _add_node(cols, parent, None, ln)
        for child in children:
            j = cols.node.get(child)
            if j is None:
                j = _add_node(cols, child, parent, ln)
            elif child in placed:
                cols.tree_problems.append(
                    _two_parents(child, (cols.par[j], placed[child]), (parent, ln)) if cols.par[j] != parent
                    else f"line {ln}: {child!r} is repeated under {parent!r} (first at line {placed[child]}). "
                         "Fix: delete the repeat")
                continue
            cols.par[j] = parent
            cols.lines[j] = placed[child] = ln  # the line that gives it its parent: where a cycle is fixed


def _check_tree(cols: _VocabColumns, p: Path, *, dedupe: bool) -> None:
    """Refuse a broken tree with one error naming every problem's line (at most 10 shown), and the fix."""
    found = list(cols.tree_problems)
    lines_of: dict[str, list[int]] = {}
    for lab, ln in zip(cols.labels, cols.lines, strict=True):
        lines_of.setdefault(lab, []).append(ln)
    parent_of: dict[str, str | None] = {}
    for lab, par, ln in zip(cols.labels, cols.par, cols.lines, strict=True):
        if lab not in parent_of:
            parent_of[lab] = par
        elif parent_of[lab] != par:
            found.append(_two_parents(lab, (parent_of[lab], lines_of[lab][0]), (par, ln)))
        elif not dedupe:
            found.append(f"line {ln}: {lab!r} is repeated (first at line {lines_of[lab][0]}). Fix: delete the repeat")
    for lab, par, ln in zip(cols.labels, cols.par, cols.lines, strict=True):
        if par is not None and par not in parent_of:
            found.append(f"line {ln}: the parent {par!r} of {lab!r} is not a label of the file (an unknown parent). "
                         "Fix: add it as a label of its own (a root leaves its parent empty), or correct the name")
    found.sort(key=lambda msg: int(msg.split(":")[0].removeprefix("line ")) if msg.startswith("line ") else 0)
    found += _cycles(parent_of, lines_of)
    if found:
        shown = "\n  ".join(found[:10])
        more = f"\n  ... and {len(found) - 10} more" if len(found) > 10 else ""
        raise VocabularyError(f"{p}: the label tree has {len(found)} problem(s):\n  {shown}{more}")


def _cycles(parent_of: dict[str, str | None], lines_of: dict[str, list[int]]) -> list[str]:
    """One message per cycle of ``parent_of``, naming its labels and their lines."""
    state: dict[str, int] = {}  # 1: on the current walk, 2: done
    out = []
    for start in parent_of:
        walk: list[str] = []
        node: str | None = start
        while node is not None and node in parent_of and node not in state:
            state[node] = 1
            walk.append(node)
            node = parent_of[node]
        if node is not None and state.get(node) == 1:
            ring = walk[walk.index(node):]
            names = " -> ".join(f"{n!r} (line {lines_of[n][0]})" for n in [*ring, ring[0]])
            out.append(f"a cycle: {names}, each the parent of the one before. "
                       "Fix: give one of them another parent (or none: a root)")
        for n in walk:
            state[n] = 2
    return out


def _drop_repeats(cols: _VocabColumns, p: Path, problems: list[str] | None) -> None:
    """Keep the first of repeated labels (and their columns); note each dropped repeat in ``problems``."""
    first: dict[str, int] = {}
    keep = []
    for i, lab in enumerate(cols.labels):
        if lab in first:
            if problems is not None:
                problems.append(f"{p}:{cols.lines[i]}: duplicate label {lab!r} dropped "
                                f"(first at line {cols.lines[first[lab]]})")
            continue
        first[lab] = i
        keep.append(i)
    cols.labels = [cols.labels[i] for i in keep]
    cols.descs = [cols.descs[i] for i in keep] if cols.descs else cols.descs
    cols.pri = [cols.pri[i] for i in keep] if cols.pri else cols.pri
    cols.par = [cols.par[i] for i in keep] if cols.par else cols.par


def _flag(value: object, path: Path, line: int) -> bool:
    """A ``catch_all`` cell: true/1/yes or false/0/no/empty (JSON booleans too)."""
    if value is None or isinstance(value, bool):
        return bool(value)
    text = str(value).strip().lower()
    if text in ("", "0", "false", "no", "n"):
        return False
    if text in ("1", "true", "yes", "y"):
        return True
    raise VocabularyError(f"{path}:{line}: catch_all must be true/false (or 1/0, yes/no); got {value!r}.")


def _check_catch_all(labels: tuple[str, ...], catch_all: Iterable[str] | None) -> tuple[str, ...]:
    """The catch-all labels in vocabulary order; each must be a label, and at least one label must be a real one."""
    if catch_all is None:
        return ()
    if isinstance(catch_all, str):
        catch_all = [catch_all]
    wanted = set(catch_all)
    unknown = sorted(wanted - set(labels))
    if unknown:
        raise VocabularyError(f"catch-all label(s) {unknown[:5]} are not in the vocabulary; a catch-all must be one of "
                              "its labels. Fix: spell it as in the vocabulary file.")
    if len(wanted) >= len(labels):
        raise VocabularyError("every label is marked catch-all; at least one label must be a real one.")
    return tuple(lab for lab in labels if lab in wanted)


def _split_lines(text: str) -> list[str]:
    r"""Lines ended by ``\n`` or ``\r\n`` only: ``str.splitlines`` would also split a label at
    U+2028, U+0085, form feeds and other characters that can sit inside a label.

    Example:
        >>> _split_lines("a\u2028b\r\nc\n")
        ['a\u2028b', 'c']
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _prior(value: object, path: Path, line: int) -> float:
    """A ``prior`` cell as a float; ``None`` or an empty cell is 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0.0
    try:
        prior = float("nan") if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        prior = float("nan")
    if not math.isfinite(prior) or prior < 0:
        raise VocabularyError(f"{path}:{line}: prior {value!r:.40} is not a non-negative number. "
                              "Fix: write a number such as 0.25 (or leave it empty for 0).")
    return prior


def _check_parents(labels: tuple[str, ...], parents: Sequence[str | None] | Mapping[str, str | None]
                   ) -> tuple[tuple[str | None, ...], Taxonomy]:
    """The parents aligned with ``labels`` and their tree; an unknown parent or a cycle is refused (by
    :class:`~zsl.taxonomy.Taxonomy`, in linear time)."""
    if isinstance(parents, Mapping):
        par = tuple(parents.get(lab) or None for lab in labels)
    else:
        par = tuple(x or None for x in parents)
        if len(par) != len(labels):
            raise VocabularyError(f"Got {len(par)} parents for {len(labels)} labels; they must match 1:1.")
    return par, Taxonomy(labels, par)


def vocab_difference(expected: Sequence[str], got: Sequence[str], *, expected_name: str = "expected",
                     got_name: str = "given") -> str:
    """Describe how two label lists differ (missing, extra, first re-ordered column).

    Args:
        expected, got: the label lists, in column order.
        expected_name, got_name: how to call each side in the message.

    Returns:
        ``""`` when they are identical, else a one-paragraph description.

    Example:
        >>> vocab_difference(["a", "b", "c"], ["a", "c", "d"])
        "2 of the 3 expected labels are among the 3 given ones; missing from given: ['b']; not in expected: ['d']"
        >>> vocab_difference(["a", "b"], ["b", "a"])
        "same 2 labels in a different order; first difference at column 0: expected has 'a', given has 'b'"
    """
    exp, new = list(expected), list(got)
    if exp == new:
        return ""
    exp_set, new_set = set(exp), set(new)
    missing = [lab for lab in exp if lab not in new_set]
    extra = [lab for lab in new if lab not in exp_set]

    def show(labels: list[str]) -> str:
        head = ", ".join(repr(lab) for lab in labels[:8])
        return f"[{head}{', ...' if len(labels) > 8 else ''}]" + (f" ({len(labels)})" if len(labels) > 8 else "")

    parts = []
    if missing:
        parts.append(f"missing from {got_name}: {show(missing)}")
    if extra:
        parts.append(f"not in {expected_name}: {show(extra)}")
    if not parts:
        j = next(i for i, (a, b) in enumerate(zip(exp, new)) if a != b)
        parts.append(f"same {len(exp)} labels in a different order; first difference at column {j}: "
                     f"{expected_name} has {exp[j]!r}, {got_name} has {new[j]!r}")
        return "; ".join(parts)
    common = len(exp_set & new_set)
    return f"{common} of the {len(exp)} {expected_name} labels are among the {len(new)} {got_name} ones; " + "; ".join(parts)
