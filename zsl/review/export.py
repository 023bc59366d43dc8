"""Export predictions for human review, least confident first: ``zsl export``.

Two targets, written with :mod:`json` only (no label_studio or argilla package needed):

* **Label Studio**: an import file (a JSON list of tasks, each with ``data`` and
  ``predictions`` in Label Studio's pre-annotation format) and, beside it, the labeling
  config XML (``<Text>``/``<Image>`` with a multiple-choice ``<Choices>`` over the labels).
  Create the project with the config, then import the tasks file. For a vocabulary with a tree
  (``parents``) the config holds a ``<Taxonomy>`` of nested ``<Choice>`` elements instead, and each
  prediction is a list of paths from the top level down (``{"taxonomy": [["Geography", "Lakes"]]}``).
* **Argilla 2.x**: records as ``rg.Record.to_dict()`` writes them (``fields``,
  ``metadata``, ``suggestions`` keyed by question name) and, beside them, the dataset
  settings as ``rg.Settings.serialize()`` writes them (a text/image field and a
  ``multi_label_selection`` question; with a tree each option shows its path). Load with ``rg.Settings.from_json(settings_path)``
  and ``[rg.Record.from_dict(r) for r in records]``.

Order: :func:`review_order` puts the rows a reviewer should see first at the front --
lowest confidence (top-1 score) or largest disagreement between the final labels and the
retrieval-only labels; :func:`quality_order` puts first the rows whose labels are most likely
wrong by the label-quality scores of :mod:`zsl.review.quality` (``--sort label-quality``).

Example:
    >>> rows = [{"id": "1", "text": "a", "labels": ["x"], "scores": [0.9]},
    ...         {"id": "2", "text": "b", "labels": ["y"], "scores": [0.3]}]
    >>> review_order(rows)
    [1, 0]
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from zsl.data.files import BadRow, atomic_write
from zsl.errors import InputError, VocabularyError
from zsl.rows import PredRow, parse_pred_row, read_predictions

__all__ = [
    "FORMATS",
    "SORTS",
    "argilla_settings",
    "argilla_warnings",
    "confidence",
    "disagreement",
    "export_review",
    "label_studio_config",
    "label_studio_taxonomy",
    "model_id",
    "quality_order",
    "review_order",
    "to_argilla",
    "to_label_studio",
]

FORMATS = ("labelstudio", "argilla")
SORTS = ("confidence", "disagreement", "label-quality")
PATH_SEP = " > "  # how a label's path is shown (Label Studio's pathSeparator, Argilla's option text)
QUESTION = "labels"  # name of the Label Studio <Choices> control and of the Argilla question
_FILTER_ABOVE = 20  # Label Studio gets a search box over the choices above this many labels
_ARGILLA_MAX_OPTIONS = 500  # Argilla server default (ARGILLA_LABEL_SELECTION_OPTIONS_MAX_ITEMS)
_ARGILLA_MAX_VALUE_LEN = 200  # Argilla server limit on an option value


def _as_rows(rows: Iterable[PredRow | Mapping[str, Any]]) -> list[PredRow]:
    out = []
    for i, r in enumerate(rows, 1):
        parsed = r if isinstance(r, PredRow) else parse_pred_row(r, i)
        if isinstance(parsed, str):
            raise InputError(
                f"Row {i}: {parsed}. Fix: pass rows as `zsl label` writes them "
                "(or read them with zsl.rows.read_predictions, which skips bad rows)."
            )
        out.append(parsed)
    return out


def confidence(row: PredRow | Mapping[str, Any]) -> float | None:
    """How sure the model is about a row: the score of its best label (top-1 score).

    Why the top-1 score: older rows keep only the top-k labels and their scores, so a margin
    to the best *unkept* label cannot always be computed (rows with ``top_scores`` have it).
    The mean kept score depends on k and punishes items that truly have one label; the
    top1-top2 margin punishes items that truly have two. The top-1 score asks "did the model find anything it is sure of?",
    needs one score and is comparable across the rows of one run (not across runs or
    models: their scores live on different scales).

    Args:
        row: a prediction row (dict as written by ``zsl label``) or a :class:`~zsl.rows.PredRow`.

    Returns:
        the top score; None for a row with no scored label (it is reviewed first).

    Example:
        >>> confidence({"id": "1", "labels": ["a", "b"], "scores": [0.7, 0.2]})
        0.7
    """
    (r,) = _as_rows([row])
    return r.ranked[0][1] if r.ranked else None


def disagreement(row: PredRow | Mapping[str, Any]) -> float | None:
    """Share of a row's labels that retrieval alone did not propose.

    ``1 - |labels ∩ retrieval_labels| / max(len(labels), 1)``: 0 when the LLM's final
    labels are all among the retrieval-only top labels, 1 when none are.

    Args:
        row: a prediction row with ``retrieval_labels``.

    Returns:
        the disagreement, or None when the row has no ``retrieval_labels`` list.

    Example:
        >>> disagreement({"id": "1", "labels": ["a", "b"], "scores": [0.7, 0.2], "retrieval_labels": ["b", "c"]})
        0.5
    """
    (r,) = _as_rows([row])
    retrieval = r.row.get("retrieval_labels")
    if not isinstance(retrieval, list):
        return None
    return 1.0 - len(set(r.chosen) & {x for x in retrieval if isinstance(x, str)}) / max(len(r.chosen), 1)


def review_order(rows: Sequence[PredRow | Mapping[str, Any]], by: str = "confidence") -> list[int]:
    """Indices of ``rows`` in review order: least confident (or most disputed) first.

    The sort is stable: rows that tie keep their input order.

    Args:
        rows: prediction rows.
        by: ``"confidence"`` (ascending top-1 score, see :func:`confidence`; rows without
            a scored label first) or ``"disagreement"`` (descending, see
            :func:`disagreement`; needs ``retrieval_labels`` on every row).

    Returns:
        a permutation of ``range(len(rows))``; use ``[rows[i] for i in order]``.

    Raises:
        InputError: unknown ``by``, a malformed row, or ``by="disagreement"`` on rows
            without ``retrieval_labels``.

    Example:
        >>> rows = [{"id": "1", "labels": ["a"], "scores": [0.5], "retrieval_labels": ["a"]},
        ...         {"id": "2", "labels": ["b"], "scores": [0.9], "retrieval_labels": ["c"]}]
        >>> review_order(rows, by="disagreement")
        [1, 0]
    """
    if by not in SORTS:
        raise InputError(f"by must be one of {', '.join(SORTS)}; got {by!r}")
    if by == "label-quality":
        raise InputError("by='label-quality' needs the run's label-quality scores: use quality_order(rows, "
                         "zsl.review.quality.run_quality(run)) or export_review(run, ..., sort='label-quality').")
    parsed = _as_rows(rows)
    if by == "confidence":
        conf = [confidence(r) for r in parsed]
        return sorted(range(len(parsed)), key=lambda i: -float("inf") if conf[i] is None else conf[i])
    dis = [disagreement(r) for r in parsed]
    lacking = [parsed[i].id for i, d in enumerate(dis) if d is None]
    if lacking:
        shown = ", ".join(repr(x) for x in lacking[:5])
        raise InputError(
            f"Sorting by disagreement needs 'retrieval_labels' on every row; {len(lacking)} of "
            f"{len(parsed)} rows lack it (e.g. {shown}). Fix: sort by confidence, or label again "
            "with a zsl version that records the retrieval-only labels."
        )
    return sorted(range(len(parsed)), key=lambda i: -dis[i])  # type: ignore[operator]


def quality_order(rows: Sequence[PredRow | Mapping[str, Any]], report: Any) -> list[int]:
    """Indices of ``rows`` with the labels most likely wrong first (a :class:`zsl.review.quality.QualityReport`'s order).

    Rows the report does not know (labelled after it was computed) come last, in input order.

    Raises:
        InputError: the report shares no id with the rows (it belongs to another run).

    Example:
        >>> from types import SimpleNamespace
        >>> rep = SimpleNamespace(ids=["a", "b"], order=lambda: [1, 0])
        >>> quality_order([{"id": "a", "labels": [], "scores": []}, {"id": "b", "labels": [], "scores": []}], rep)
        [1, 0]
    """
    parsed = _as_rows(rows)
    rank = {report.ids[i]: n for n, i in enumerate(report.order())}
    if parsed and not any(r.id in rank for r in parsed):
        raise InputError("The label-quality scores share no item id with these rows: they belong to another run. "
                         "Fix: recompute them (zsl issues RUN --refresh).")
    return sorted(range(len(parsed)), key=lambda i: (rank.get(parsed[i].id, len(rank)), i))


# -- shared helpers -------------------------------------------------------------------------
def _kind(rows: Sequence[PredRow]) -> str:
    kinds = {"image" if "image" in r.row and "text" not in r.row else "text" for r in rows}
    if len(kinds) > 1:
        raise InputError("The rows mix texts and images; export them to separate files.")
    kind = kinds.pop() if kinds else "text"
    for r in rows:
        if not isinstance(r.row.get(kind), str):
            raise InputError(f"Row {r.id!r} has no {kind!r} string; a reviewer needs the {kind} to judge the labels.")
    return kind


def model_id(provenance: Mapping[str, Any] | None) -> str:
    """A short name of what produced the labels, from a row's ``provenance``.

    Example:
        >>> model_id({"infer_lm": "qwen", "rank_lm": "qwen", "encoder": "minilm-l6"})
        'qwen + minilm-l6'
    """
    prov = provenance or {}
    parts: list[str] = []
    settings = prov.get("settings") if isinstance(prov.get("settings"), Mapping) else {}
    for v in (
        prov.get("infer_lm"),
        prov.get("rank_lm"),
        prov.get("student"),
        prov.get("encoder"),
        settings.get("backend"),
    ):
        if isinstance(v, str) and v and v not in parts:
            parts.append(v)
    return " + ".join(parts) if parts else "zsl"


def _label_options(rows: Sequence[PredRow], vocab_labels: Sequence[str] | None) -> list[str]:
    used: list[str] = []
    seen: set[str] = set()
    for r in rows:
        for lab in r.chosen:
            if lab not in seen:
                seen.add(lab)
                used.append(lab)
    if vocab_labels is None:
        return used
    if isinstance(vocab_labels, str):
        raise InputError("vocab_labels must be a list of labels, got one string.")
    options = list(vocab_labels)
    known = set(options)
    unknown = [lab for lab in used if lab not in known]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        raise VocabularyError(
            f"{len(unknown)} predicted label(s) are not in vocab_labels: {shown}. Fix: pass the "
            "vocabulary the predictions were made with."
        )
    return options


def _write_json(path: Path, obj: Any, *, lines: bool = False) -> Path:
    """Write an export file owner-only (0600), like the run it comes from: it holds the item texts."""

    def write(tmp: Path) -> None:
        with tmp.open("w", encoding="utf-8") as fh:
            if lines:
                for item in obj:
                    fh.write(json.dumps(item, ensure_ascii=False) + "\n")
            else:
                json.dump(obj, fh, ensure_ascii=False, indent=1)
                fh.write("\n")

    return atomic_write(path, write, private=True)


def _attr(value: str) -> str:
    """A double-quoted XML attribute value (quotes, &, <, > and line breaks escaped)."""
    return '"' + escape(value, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}) + '"'


def _tree(labels: Sequence[str], parents: Sequence[str | None] | Mapping[str, str | None] | None
          ) -> dict[str, list[str]] | None:
    """Each label's path (top level first, the label last) when ``parents`` names a tree, else None.

    Raises:
        VocabularyError: an unknown parent or a cycle (checked as :class:`~zsl.vocab.LabelVocab` checks them).
    """
    if parents is None:
        return None
    from zsl.vocab import LabelVocab

    vocab = LabelVocab(labels, parents=parents)
    if vocab.parents is None or not any(vocab.parents):
        return None
    return {lab: [*vocab.ancestors(lab), lab] for lab in vocab.labels}


def _deepest(chosen: Sequence[str], paths: Mapping[str, list[str]]) -> list[str]:
    """The chosen labels that are not an ancestor of another chosen label (a path names its ancestors)."""
    above = {a for lab in chosen for a in paths[lab][:-1]}
    return [lab for lab in dict.fromkeys(chosen) if lab not in above]


def _sidecar_tree(pred: str | os.PathLike[str]) -> tuple[list[str] | None, list[str | None] | None]:
    """``(labels, parents)`` of the tree the predictions' sidecar records, else ``(None, None)``."""
    from zsl.rows import read_meta, resolve_predictions

    meta = read_meta(resolve_predictions(pred))
    v = meta.get("vocab") if isinstance(meta, dict) else None
    labels, parents = (v.get("labels"), v.get("parents")) if isinstance(v, dict) else (None, None)
    if not isinstance(labels, list) or not isinstance(parents, list) or len(labels) != len(parents) or not any(parents):
        return None, None
    return labels, parents


# -- Label Studio ---------------------------------------------------------------------------
def label_studio_taxonomy(labels: Sequence[str], parents: Sequence[str | None] | Mapping[str, str | None],
                          kind: str = "text") -> str:
    """The Label Studio labeling config for a tree: the item and a ``<Taxonomy>`` of nested ``<Choice>`` elements.

    Args:
        labels: every node of the tree, in order (children keep this order under their parent).
        parents: each label's parent (``None`` for a top-level label), aligned with ``labels`` or by name.
        kind: ``"text"`` or ``"image"``.

    Returns:
        the XML text; a selection is stored with its ancestors, so predictions are paths.

    Example:
        >>> print(label_studio_taxonomy(["Geography", "Lakes"], [None, "Geography"]))
        <View>
          <Text name="text" value="$text"/>
          <Taxonomy name="labels" toName="text" showFullPath="true" pathSeparator=" &gt; ">
            <Choice value="Geography">
              <Choice value="Lakes"/>
            </Choice>
          </Taxonomy>
        </View>
        <BLANKLINE>
    """
    paths = _tree(labels, parents) or {lab: [lab] for lab in labels}
    children: dict[str | None, list[str]] = {}
    for lab in paths:
        children.setdefault(paths[lab][-2] if len(paths[lab]) > 1 else None, []).append(lab)
    tag = {"text": "Text", "image": "Image"}[kind]
    lines = ["<View>", f'  <{tag} name="{kind}" value="${kind}"/>',
             f'  <Taxonomy name="{QUESTION}" toName="{kind}" showFullPath="true" pathSeparator={_attr(PATH_SEP)}>']
    stack: list[tuple[str, int, bool]] = [(lab, 2, False) for lab in reversed(children.get(None, []))]
    while stack:  # depth first without recursion: a deep tree must not hit Python's recursion limit
        lab, depth, closing = stack.pop()
        pad = "  " * depth
        if closing:
            lines.append(f"{pad}</Choice>")
        elif lab in children:
            lines.append(f"{pad}<Choice value={_attr(lab)}>")
            stack.append((lab, depth, True))
            stack += [(c, depth + 1, False) for c in reversed(children[lab])]
        else:
            lines.append(f"{pad}<Choice value={_attr(lab)}/>")
    lines += ["  </Taxonomy>", "</View>", ""]
    return "\n".join(lines)


def label_studio_config(labels: Sequence[str], kind: str = "text") -> str:
    """The Label Studio labeling config: the item and a multiple-choice list of ``labels``.

    Args:
        labels: the choices, in order (any characters: they are XML-escaped).
        kind: ``"text"`` or ``"image"``.

    Returns:
        the XML text.

    Example:
        >>> print(label_studio_config(['a, "b" & <c>'], "text"))
        <View>
          <Text name="text" value="$text"/>
          <Choices name="labels" toName="text" choice="multiple" showInline="false">
            <Choice value="a, &quot;b&quot; &amp; &lt;c&gt;"/>
          </Choices>
        </View>
        <BLANKLINE>
    """
    tag = {"text": "Text", "image": "Image"}[kind]
    lines = ["<View>", f'  <{tag} name="{kind}" value="${kind}"/>']
    if len(labels) > _FILTER_ABOVE:
        lines.append(
            f'  <Filter name="filter" toName="{QUESTION}" hotkey="shift+f" minlength="1" placeholder="Filter labels"/>'
        )
    lines.append(f'  <Choices name="{QUESTION}" toName="{kind}" choice="multiple" showInline="false">')
    lines += [f"    <Choice value={_attr(lab)}/>" for lab in labels]
    lines += ["  </Choices>", "</View>", ""]
    return "\n".join(lines)


def to_label_studio(
    rows: Sequence[PredRow | Mapping[str, Any]],
    out_path: str | os.PathLike[str],
    *,
    vocab_labels: Sequence[str] | None = None,
    parents: Sequence[str | None] | Mapping[str, str | None] | None = None,
) -> tuple[Path, Path]:
    """Write a Label Studio import file and its labeling config, rows in the order given.

    Each task is ``{"data": {"text"|"image", "id", "confidence", "disagreement"?},
    "predictions": [{"model_version", "score", "result": [{"from_name": "labels",
    "to_name": "text"|"image", "type": "choices", "value": {"choices": [...]}}]}]}``.
    ``score`` is the row's :func:`confidence`, so Label Studio's Data Manager can sort by
    it. Image paths are written as given; Label Studio needs URLs it can fetch (e.g. local
    files storage).

    Args:
        rows: prediction rows (sort them first with :func:`review_order`).
        out_path: the tasks file (``.json``); the config goes beside it as
            ``<stem>.config.xml``.
        vocab_labels: every label a reviewer may choose (default: only the labels that
            occur in the rows -- pass the vocabulary to allow any of its labels).
        parents: for a tree vocabulary, each of ``vocab_labels``' parent (aligned, or by name):
            the config is a ``<Taxonomy>`` (:func:`label_studio_taxonomy`) and each prediction
            lists the paths of the row's deepest labels (``"type": "taxonomy"``).

    Returns:
        ``(tasks_path, config_path)``.

    Raises:
        InputError: malformed rows, texts mixed with images, unwritable path.
        VocabularyError: a predicted label missing from ``vocab_labels``; an unknown parent or a cycle.

    Example:
        >>> to_label_studio(rows, "review/tasks.json", vocab_labels=vocab.labels)   # doctest: +SKIP
    """
    parsed = _as_rows(rows)
    kind = _kind(parsed)
    if parents is not None and vocab_labels is None:
        raise InputError("parents need the whole tree: pass vocab_labels too (the vocabulary's labels).")
    options = _label_options(parsed, vocab_labels)
    paths = _tree(options, parents)
    tasks = []
    for r in parsed:
        data: dict[str, Any] = {kind: r.row[kind], "id": r.id, "confidence": confidence(r)}
        dis = disagreement(r)
        if dis is not None:
            data["disagreement"] = dis
        prediction: dict[str, Any] = {"model_version": model_id(r.row.get("provenance")), "result": []}
        if r.chosen and paths is not None:
            taxonomy = [paths[lab] for lab in _deepest(r.chosen, paths)]
            prediction["result"] = [
                {"from_name": QUESTION, "to_name": kind, "type": "taxonomy", "value": {"taxonomy": taxonomy}}
            ]
        elif r.chosen:
            prediction["result"] = [
                {"from_name": QUESTION, "to_name": kind, "type": "choices", "value": {"choices": list(r.chosen)}}
            ]
        if data["confidence"] is not None:
            prediction["score"] = data["confidence"]
        tasks.append({"data": data, "predictions": [prediction]})
    out = Path(out_path)
    config = out.with_name(f"{out.stem}.config.xml")
    body = label_studio_config(options, kind) if paths is None else label_studio_taxonomy(options, parents, kind)

    def write_config(tmp: Path) -> None:
        tmp.write_text(body, encoding="utf-8")

    return _write_json(out, tasks), atomic_write(config, write_config, private=True)


# -- Argilla --------------------------------------------------------------------------------
def argilla_settings(
    labels: Sequence[str], kind: str = "text", *, with_disagreement: bool = False, guidelines: str | None = None,
    parents: Sequence[str | None] | Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """Argilla 2.x dataset settings (as ``rg.Settings.serialize()`` writes them).

    One field (``text``, or ``image``), one ``multi_label_selection`` question named
    ``labels`` over ``labels``, float metadata ``confidence`` (and ``disagreement``) and a
    terms metadata ``item_id``. With ``parents`` (a tree) each option shows its path
    (``Geography > Lakes``) and keeps the label as its value.

    Example:
        >>> argilla_settings(["a", "b"])["questions"][0]["settings"]["options"]
        [{'text': 'a', 'value': 'a'}, {'text': 'b', 'value': 'b'}]
    """

    def meta(name: str, title: str, typ: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "title": title,
            "type": typ,
            "visible_for_annotators": True,
            "settings": {"type": typ, "visible_for_annotators": True, **extra},
        }

    metadata = [meta("confidence", "Model confidence (top-1 score)", "float", min=None, max=None)]
    if with_disagreement:
        metadata.append(
            meta("disagreement", "Labels not proposed by retrieval alone (share)", "float", min=None, max=None)
        )
    metadata.append(meta("item_id", "Item id", "terms", values=None))
    field_settings = {"type": "text", "use_markdown": False} if kind == "text" else {"type": "image"}
    paths = _tree(labels, parents) or {}
    return {
        "guidelines": guidelines
        or (
            "Labels suggested by a model, least confident items first. Keep the labels "
            "that apply, untick the others, add missing ones."
        ),
        "allow_extra_metadata": False,
        "fields": [
            {
                "name": kind,
                "title": kind.capitalize(),
                "required": True,
                "description": None,
                "settings": field_settings,
            }
        ],
        "questions": [
            {
                "name": QUESTION,
                "title": "Which labels apply?",
                "description": None,
                "required": True,
                "settings": {
                    "type": "multi_label_selection",
                    "options": [{"text": PATH_SEP.join(paths.get(lab, [lab])), "value": lab} for lab in labels],
                    "visible_options": min(len(labels), 20) if len(labels) >= 3 else None,
                    "options_order": "suggestion",
                },
            }
        ],
        "metadata": metadata,
        "vectors": [],
    }


def to_argilla(
    rows: Sequence[PredRow | Mapping[str, Any]],
    out_path: str | os.PathLike[str],
    *,
    vocab_labels: Sequence[str] | None = None,
    parents: Sequence[str | None] | Mapping[str, str | None] | None = None,
) -> tuple[Path, Path]:
    """Write Argilla 2.x records and dataset settings, rows in the order given.

    Each record is ``{"id", "fields": {"text"|"image"}, "metadata": {"confidence",
    "disagreement"?, "item_id"}, "suggestions": {"labels": {"value": [...], "score":
    [...], "agent"}}, "responses": {}, "vectors": {}}`` -- the shape of
    ``rg.Record.to_dict()``; the suggestion scores are aligned with its values and the
    agent names the model (from the row's provenance).

    Args:
        rows: prediction rows (sort them first with :func:`review_order`).
        out_path: records file: ``.jsonl`` for JSON Lines, else one JSON list. The settings
            go beside it as ``<stem>.settings.json``.
        vocab_labels: the question's options (default: the labels that occur in the rows).
        parents: for a tree vocabulary, each of ``vocab_labels``' parent: options show their paths.

    Returns:
        ``(records_path, settings_path)``. :func:`argilla_warnings` says whether the
        labels fit an Argilla server's limits.

    Raises:
        InputError: malformed rows, texts mixed with images, unwritable path.
        VocabularyError: a predicted label missing from ``vocab_labels``.

    Example:
        >>> records, settings = to_argilla(rows, "review/records.json")   # doctest: +SKIP
    """
    parsed = _as_rows(rows)
    kind = _kind(parsed)
    if parents is not None and vocab_labels is None:
        raise InputError("parents need the whole tree: pass vocab_labels too (the vocabulary's labels).")
    options = _label_options(parsed, vocab_labels)
    records = []
    any_dis = False
    for r in parsed:
        meta: dict[str, Any] = {"item_id": r.id}
        conf = confidence(r)
        if conf is not None:
            meta["confidence"] = conf
        dis = disagreement(r)
        if dis is not None:
            meta["disagreement"] = dis
            any_dis = True
        score_of = dict(r.ranked)
        suggestions = {}
        if r.chosen:
            suggestions[QUESTION] = {
                "value": list(r.chosen),
                "score": [score_of[lab] for lab in r.chosen],
                "agent": model_id(r.row.get("provenance")),
            }
        records.append(
            {
                "id": r.id,
                "fields": {kind: r.row[kind]},
                "metadata": meta,
                "suggestions": suggestions,
                "responses": {},
                "vectors": {},
            }
        )
    out = Path(out_path)
    settings_path = out.with_name(f"{out.stem}.settings.json")
    records_path = _write_json(out, records, lines=out.suffix.lower() == ".jsonl")
    _write_json(settings_path, argilla_settings(options, kind, with_disagreement=any_dis, parents=parents))
    return records_path, settings_path


def argilla_warnings(labels: Sequence[str]) -> list[str]:
    """Argilla server limits a label list breaks: more than 500 options (the default of
    ``ARGILLA_LABEL_SELECTION_OPTIONS_MAX_ITEMS``), fewer than 2, or values over 200 characters.

    Example:
        >>> argilla_warnings(["only one"])
        ['Argilla needs at least 2 label options; pass the vocabulary (vocab_labels / --labels).']
    """
    warnings = []
    if len(labels) > _ARGILLA_MAX_OPTIONS:
        warnings.append(
            f"{len(labels)} label options: an Argilla server accepts {_ARGILLA_MAX_OPTIONS} by default "
            "(raise ARGILLA_LABEL_SELECTION_OPTIONS_MAX_ITEMS on the server, or export fewer labels)."
        )
    long = [lab for lab in labels if len(lab) > _ARGILLA_MAX_VALUE_LEN]
    if long:
        warnings.append(
            f"{len(long)} labels are longer than the {_ARGILLA_MAX_VALUE_LEN} characters Argilla "
            f"accepts for an option value (e.g. {long[0][:40]!r}...)."
        )
    if len(labels) < 2:
        warnings.append("Argilla needs at least 2 label options; pass the vocabulary (vocab_labels / --labels).")
    return warnings


# -- one call for the CLI -------------------------------------------------------------------
def export_review(
    pred: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    out_path: str | os.PathLike[str],
    *,
    format: str = "labelstudio",
    sort: str = "confidence",
    limit: int | None = None,
    vocab_labels: Sequence[str] | None = None,
    encoder: Any = None,
    parents: Sequence[str | None] | Mapping[str, str | None] | None = None,
) -> dict[str, Any]:
    """Read predictions, order them for review, keep the first ``limit`` and export them.

    Args:
        pred: predictions file, run folder with ``labels.jsonl``, or rows.
        out_path: the tasks/records file.
        format: ``"labelstudio"`` or ``"argilla"``.
        sort: ``"confidence"`` or ``"disagreement"`` (see :func:`review_order`), or
            ``"label-quality"`` (labels most likely wrong first: :func:`zsl.review.quality.run_quality`,
            computed once and cached in the run directory).
        limit: export only the first ``limit`` rows of the order.
        vocab_labels: every label a reviewer may choose.
        encoder: the encoder label-quality scores embed the texts with (default minilm-l6).
        parents: for a tree vocabulary, each of ``vocab_labels``' parent: Label Studio gets a
            ``<Taxonomy>``, Argilla options show their paths. When neither is given and ``pred``'s
            sidecar records a tree (runs of a tree vocabulary do), that tree is used.

    Returns:
        ``out``, ``companion`` (config or settings path), ``exported``, ``rows`` (usable
        rows read), ``sort`` (the order used: ``"confidence"`` when label-quality scores cannot
        be computed, with a warning), ``bad_rows`` (``file:line: reason``) and ``warnings``.

    Raises:
        InputError: unknown format/sort, bad limit, unreadable predictions.

    Example:
        >>> export_review("out/run", "review.json", format="labelstudio", limit=200)  # doctest: +SKIP
    """
    if format not in FORMATS:
        raise InputError(f"format must be one of {', '.join(FORMATS)}; got {format!r}")
    if sort not in SORTS:
        raise InputError(f"sort must be one of {', '.join(SORTS)}; got {sort!r}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer, got {limit!r}")
    bad: list[BadRow] = []
    notes: list[str] = []
    rows = read_predictions(pred, bad=bad) if isinstance(pred, str | os.PathLike) else _as_rows(pred)
    if vocab_labels is None and parents is None and isinstance(pred, str | os.PathLike):
        vocab_labels, parents = _sidecar_tree(pred)
    if sort == "label-quality":
        if not isinstance(pred, str | os.PathLike):
            raise InputError("sort='label-quality' needs the run directory (or predictions file), not rows.")
        from zsl.review.quality import QualityUnavailable, run_quality

        try:
            order = quality_order(rows, run_quality(pred, encoder=encoder))
        except QualityUnavailable as exc:  # a 1-label or tiny run: confidence order, and say so
            notes.append(f"{exc.reason} Exported in confidence order instead.")
            sort, order = "confidence", review_order(rows, by="confidence")
    else:
        order = review_order(rows, by=sort)
    chosen = [rows[i] for i in order[:limit]]
    warnings: list[str] = list(notes)
    if format == "labelstudio":
        out, companion = to_label_studio(chosen, out_path, vocab_labels=vocab_labels, parents=parents)
    else:
        out, companion = to_argilla(chosen, out_path, vocab_labels=vocab_labels, parents=parents)
        warnings += argilla_warnings(_label_options(chosen, vocab_labels))
    return {
        "out": str(out),
        "companion": str(companion),
        "exported": len(chosen),
        "rows": len(rows),
        "sort": sort,
        "bad_rows": [str(b) for b in bad],
        "warnings": warnings,
    }
