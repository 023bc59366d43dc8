"""``zsl review RUN_DIR``: a local web page to check a run's labels, worst first.

A FastAPI app with one plain HTML page (no build step, no CDN, nothing fetched from the
network). The page shows the run's items in review order (label-quality by default: the labels
most likely wrong first), each with its text or image and the proposed labels with their
scores; the person keeps, removes or adds labels (a search box over the whole vocabulary,
filtered in the browser, at most 30 matches drawn: fast with 14k labels) and moves on. For a
vocabulary with a tree (the run's sidecar records the parents) each label is shown with its path,
the ancestors muted and the label itself prominent, and the search matches any part of a path
(``lakes`` finds ``Africa (Lakes)`` under ``Geography > Bodies of water > Lakes``).

Every change is written at once to ``reviewed.jsonl`` (see :mod:`zsl.silver.reviewed`): removing or
adding a label records the item's new label set, and "next" records the item as shown (an
unchanged item is *accepted*). Reopening the page starts at the first item not yet reviewed.

Safety: the server binds to 127.0.0.1 unless told otherwise, and answers only requests that
carry its token (a random one per start, in the URL it prints, then in an HttpOnly SameSite=Strict
cookie), so another user of the machine cannot read a private run through it; texts and labels
reach the page as JSON and are put into it with ``textContent``, never as HTML, so a text holding
``<script>`` is shown, not run; the page cannot be framed. Images are served only when a row
names them, only image files (png, jpeg, gif, webp, bmp: checked by suffix and content) inside
the run's input folder or the run directory once symlinks are resolved, and with a CSP that
forbids any active content.

Keys: ``Enter`` / ``→`` next (accept as shown), ``←`` previous, ``1``-``9`` remove/restore the
n-th label, ``/`` search labels (``Enter`` adds the first match, ``Esc`` leaves the box),
``s`` skip without deciding.

Example:
    >>> app = make_app("out/run")                     # doctest: +SKIP
    >>> serve("out/run", port=8765)                   # doctest: +SKIP
"""

from __future__ import annotations

import errno
import hashlib
import os
import secrets
import socket
import stat
import sys
import warnings
from pathlib import Path
from typing import Any

from zsl.errors import InputError, MissingDependencyError

__all__ = ["DEFAULT_HOST", "IMAGE_TYPES", "PAGE", "ReviewSession", "make_app", "serve"]

DEFAULT_HOST = "127.0.0.1"
_INSTALL = "pip install 'zsl[review]' (fastapi, uvicorn)"
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".bmp": "image/bmp"}  # no svg: an svg can hold scripts
_MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",), "image/gif": (b"GIF87a", b"GIF89a"),
          "image/bmp": (b"BM",), "image/webp": (b"RIFF",)}
_MAX_IMAGE_BYTES = 64 << 20
_PAGE_CSP = ("default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self'; "
             "frame-ancestors 'none'")
_IMAGE_CSP = "default-src 'none'; sandbox"


class ReviewSession:
    """The items of a run in review order, its vocabulary and its :class:`~zsl.silver.reviewed.ReviewStore`.

    Args:
        run_dir: the run directory (``labels.jsonl`` and its sidecar with the vocabulary).
        sort: ``"label-quality"`` (default; computed and cached on first use), ``"confidence"``
            or ``"disagreement"``.
        encoder: the encoder for label-quality scores.
        adjust: see :func:`zsl.review.quality.label_quality`.
        quality: a precomputed :class:`zsl.review.quality.QualityReport` (tests).

    Raises:
        InputError: no run, no usable row, a run being written, or a bad ``reviewed.jsonl``
            (unknown labels are listed).
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, sort: str = "label-quality", encoder: Any = None,
                 adjust: bool = False, quality: Any = None):
        from zsl.review.export import SORTS, quality_order, review_order
        from zsl.rows import read_meta, read_predictions, resolve_predictions
        from zsl.runs.rundir import check_not_running
        from zsl.silver.reviewed import REVIEWED, ReviewStore

        if sort not in SORTS:
            raise InputError(f"sort must be one of {', '.join(SORTS)}; got {sort!r}")
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise InputError(f"{self.run_dir} is not a folder. Fix: pass the run directory `zsl label --out` wrote.")
        check_not_running(self.run_dir)
        pred = resolve_predictions(self.run_dir)
        self.bad: list[Any] = []
        self.rows = read_predictions(pred, bad=self.bad)
        meta = read_meta(pred)
        vocab = (meta or {}).get("vocab", {}).get("labels") if isinstance(meta, dict) else None
        if not isinstance(vocab, list) or not all(isinstance(x, str) for x in vocab):
            seen = dict.fromkeys(lab for r in self.rows for lab, _ in r.ranked)
            vocab = list(seen)  # no sidecar: the labels the rows name
        self.labels: list[str] = vocab
        self.parents = _tree_parents(meta, vocab)
        self.sort = sort
        self.quality = None
        self.image_roots = _image_roots(self.run_dir)
        if sort == "label-quality":
            from zsl.review.quality import QualityUnavailable, run_quality

            try:
                self.quality = quality if quality is not None else run_quality(self.run_dir, encoder=encoder,
                                                                                   adjust=adjust)
            except QualityUnavailable as exc:  # a 1-label or tiny run: cleanlab has nothing to compare
                warnings.warn(f"{exc.reason} Showing the items in confidence order instead.", stacklevel=2)
                self.sort = sort = "confidence"
        if self.quality is not None:
            order = quality_order(self.rows, self.quality)
        else:
            order = review_order(self.rows, by=sort)
        self.rows = [self.rows[i] for i in order]
        self.kind = "image" if all("image" in r.row and "text" not in r.row for r in self.rows) else "text"
        self.store = ReviewStore(self.run_dir / REVIEWED, known_labels=self.labels)
        self._pos = {r.id: n for n, r in enumerate(self.rows)}
        self._qpos = {} if self.quality is None else {i: n for n, i in enumerate(self.quality.ids)}

    def first_open(self) -> int:
        """Position of the first item not yet reviewed (the last one when all are)."""
        return next((n for n, r in enumerate(self.rows) if r.id not in self.store.decisions), len(self.rows) - 1)

    def item(self, pos: int) -> dict[str, Any]:
        """What the page shows at position ``pos``."""
        if not 0 <= pos < len(self.rows):
            raise InputError(f"position {pos} is outside 0..{len(self.rows) - 1}")
        r = self.rows[pos]
        score = dict(r.ranked)
        out: dict[str, Any] = {"pos": pos, "id": r.id, "kind": self.kind, "total": len(self.rows),
                               "reviewed": len(self.store.decisions),
                               "proposed": [{"label": lab, "score": score.get(lab)} for lab in r.chosen],
                               "decision": self.store.decisions.get(r.id)}
        out["text"] = r.row.get("text") if self.kind == "text" else None
        out["phrases"] = _phrases(r.row) if self.kind == "image" else []
        q = self._qpos.get(r.id)
        if q is not None and self.quality is not None:
            out["quality"] = {"score": round(float(self.quality.quality[q]), 4),
                              "disagreement": round(float(self.quality.disagreement[q]), 3),
                              "issue": bool(self.quality.issue[q]), "doubted": self.quality.doubted[q],
                              "suggested": self.quality.suggested[q], "student": self.quality.student[q]}
        return out

    def decide(self, item_id: str, labels: list[str]) -> dict[str, Any]:
        """Record the person's labels for ``item_id``; returns the progress."""
        pos = self._pos.get(item_id)
        if pos is None:
            raise InputError(f"unknown item id {item_id!r}")
        rec = self.store.decide(self.rows[pos].row, labels)
        return {"decision": rec, "reviewed": len(self.store.decisions), "total": len(self.rows)}

    def image_path(self, pos: int) -> Path:
        """The image file the row at ``pos`` names, symlinks resolved (relative: to the run directory,
        the input folder, then the working folder; the first that exists)."""
        r = self.rows[pos]
        p = Path(str(r.row.get("image", "")))
        if not p.is_absolute():  # an image run's id is the image's path relative to its input folder
            tries = [self.run_dir / p, *(b / p for b in self.image_roots[1:]), Path.cwd() / p,
                     *(b / r.id for b in self.image_roots[1:])]
            p = next((t for t in tries if os.path.lexists(t)), tries[0])
        return Path(os.path.realpath(p))

    def read_image(self, pos: int) -> tuple[bytes, str, str]:
        """``(content, media type, file name)`` of the row's image, or InputError saying why it is not served.

        Served only: a regular file (opened without following a symlink, after resolving them)
        inside the run directory or the run's input folder, with an image suffix and content.
        """
        p = self.image_path(pos)
        if not any(p.is_relative_to(root) for root in self.image_roots):
            raise InputError(f"image of item {pos} is outside the run's input folder and run directory; not served")
        media = IMAGE_TYPES.get(p.suffix.lower())
        if media is None:
            raise InputError(f"image of item {pos} is not a {'/'.join(sorted(IMAGE_TYPES))} file; not served")
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            raise InputError(f"image file of item {pos} not found") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > _MAX_IMAGE_BYTES:
                raise InputError(f"image of item {pos} is not a regular file under {_MAX_IMAGE_BYTES >> 20} MB")
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read(_MAX_IMAGE_BYTES + 1)
        finally:
            os.close(fd)
        if not data.startswith(_MAGIC[media]) or (media == "image/webp" and data[8:12] != b"WEBP"):
            raise InputError(f"image of item {pos} does not hold {media} content; not served")
        return data, media, p.name


def _phrases(row: dict[str, Any]) -> list[str]:
    """The VLM's phrases of an image row (what it said it saw), as strings; [] when the row has none.

    A row written by hand or by an older zsl may hold anything in ``phrases``: only a list is
    read, and its items are shown as text (the page never parses them as HTML).
    """
    phrases = row.get("phrases")
    if not isinstance(phrases, list):
        return []
    return [str(p) for p in phrases if p is not None and str(p).strip()][:50]
def _tree_parents(meta: Any, labels: list[str]) -> list[str | None] | None:
    """Each label's parent when the sidecar records a tree over exactly these labels, else None (flat)."""
    parents = (meta or {}).get("vocab", {}).get("parents") if isinstance(meta, dict) else None
    if not isinstance(parents, list) or len(parents) != len(labels) or not any(parents):
        return None
    known = set(labels)
    if not all(p is None or (isinstance(p, str) and p in known) for p in parents):
        return None  # a sidecar edited by hand: show flat labels rather than a wrong tree
    return [p or None for p in parents]


def _image_roots(run_dir: Path) -> list[Path]:
    """The folders images may be served from: the run directory, then the input folder its manifest names."""
    from zsl.runs.rundir import MANIFEST, read_run_json

    roots = [Path(os.path.realpath(run_dir))]
    try:
        inp = read_run_json(run_dir / MANIFEST)["input"]["path"]
    except (InputError, ValueError, KeyError, TypeError):
        return roots
    if isinstance(inp, str) and inp:
        p = Path(os.path.realpath(inp))
        roots.append(p if p.is_dir() else p.parent)
    return roots


def _content_disposition(name: str) -> str:
    safe = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name) or "image"
    return f'inline; filename="{safe}"'


def make_app(session: ReviewSession | str | os.PathLike[str], *, allowed_hosts: list[str] | None = None,
             token: str | None = None, **kwargs: Any) -> Any:
    """The FastAPI app serving the page and its JSON API for a :class:`ReviewSession` (or a run directory).

    ``allowed_hosts``: answer only requests whose ``Host`` header names one of them (any port);
    :func:`serve` passes ``["127.0.0.1", "localhost"]`` on a loopback address, so a web page that
    points its own domain at 127.0.0.1 (DNS rebinding) cannot read the run or write decisions.

    ``token``: answer only requests that carry it (``?token=`` in the URL, which also sets an
    HttpOnly SameSite=Strict cookie for the page's own requests, or an ``X-Zsl-Token`` header);
    others get 403. :func:`serve` always passes a fresh one; None (tests) checks nothing.
    """
    try:
        from fastapi import Body, FastAPI, HTTPException
        from fastapi.responses import HTMLResponse, Response
    except ImportError:
        raise MissingDependencyError(f"zsl review needs FastAPI and uvicorn. Fix: {_INSTALL}.") from None
    s = session if isinstance(session, ReviewSession) else ReviewSession(session, **kwargs)
    app = FastAPI(title="zsl review", docs_url=None, redoc_url=None, openapi_url=None)
    if allowed_hosts:
        from starlette.middleware.trustedhost import TrustedHostMiddleware

        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    _guard(app, token)
    headers = {"Content-Security-Policy": _PAGE_CSP, "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}

    @app.get("/", response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=headers)

    @app.get("/api/state")
    def state() -> dict[str, Any]:
        return {"total": len(s.rows), "reviewed": len(s.store.decisions), "start": s.first_open(), "sort": s.sort,
                "kind": s.kind, "run": str(s.run_dir), "skipped_rows": len(s.bad), "tree": s.parents is not None,
                "skipped": [str(b) for b in s.bad[:5]]}

    @app.get("/api/labels")
    def labels() -> list[str]:
        return s.labels

    @app.get("/api/parents")
    def parents() -> list[str | None] | None:
        return s.parents  # aligned with /api/labels; None for a flat vocabulary

    @app.get("/api/item/{pos}")
    def item(pos: int) -> dict[str, Any]:
        try:
            return s.item(pos)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None

    @app.post("/api/decide")
    def decide(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008 - FastAPI's way
        labels = body.get("labels")
        if not isinstance(body.get("id"), str) or not isinstance(labels, list):
            raise HTTPException(422, "expected {'id': str, 'labels': [str, ...]}")
        try:
            return s.decide(body["id"], labels)
        except InputError as exc:
            raise HTTPException(422, str(exc)) from None

    @app.get("/api/image/{pos}")
    def image(pos: int) -> Any:
        if s.kind != "image" or not 0 <= pos < len(s.rows):
            raise HTTPException(404, "no image at this position")
        try:
            data, media, name = s.read_image(pos)
        except InputError as exc:
            raise HTTPException(404, str(exc)) from None
        return Response(data, media_type=media, headers={
            "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Content-Security-Policy": _IMAGE_CSP,
            "Content-Disposition": _content_disposition(name)})

    return app


def _guard(app: Any, token: str | None) -> None:
    """Every response: not framable, no sniffing; with a token, requests without it get 403."""
    from starlette.responses import PlainTextResponse

    cookie = "zsl_review_" + hashlib.sha256((token or "").encode()).hexdigest()[:12]  # one per server: ports share cookies

    @app.middleware("http")
    async def check(request: Any, call_next: Any) -> Any:
        if token is not None:
            given = (request.query_params.get("token") or request.headers.get("x-zsl-token")
                     or request.cookies.get(cookie) or "")
            if not secrets.compare_digest(given.encode(), token.encode()):
                return PlainTextResponse(
                    "403: this zsl review server answers only its own page. Fix: open the URL `zsl review` printed "
                    "(it ends in ?token=...).", status_code=403,
                    headers={"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff"})
        response = await call_next(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if token is not None and request.query_params.get("token"):
            response.set_cookie(cookie, token, httponly=True, samesite="strict", path="/")
        return response


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port``, or one InputError line naming them and the fix."""
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is outside 0-65535. Fix: choose a port such as 8765, or --port 0 for a "
                         "free one.")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except socket.gaierror as exc:
        sock.close()
        raise InputError(f"--host {host}: no such address ({exc.strerror}). Fix: use the default 127.0.0.1, "
                         "localhost, ::1 or an address of this machine.") from None
    except OSError as exc:
        sock.close()
        fix = {errno.EADDRINUSE: f"port {port} on {host} is already in use (another `zsl review` or another "
                                 "program). Fix: choose another --port, or --port 0 for a free one.",
               errno.EACCES: f"port {port} on {host} needs administrator rights (ports below 1024). Fix: choose "
                             "--port 8765, or --port 0 for a free one.",
               errno.EADDRNOTAVAIL: f"--host {host} is not an address of this machine. Fix: use the default "
                                    "127.0.0.1, or an address this machine has."}
        raise InputError(fix.get(exc.errno, f"cannot listen on {host} port {port} ({exc.strerror}). Fix: choose "
                                            "another --host or --port (--port 0: a free one).")) from None
    return sock


def _open_session(run_dir: str | os.PathLike[str], **kwargs: Any) -> tuple[ReviewSession, int | None]:
    """The session and the run's review lock; a run that cannot be served leaves no lock file behind."""
    from zsl.rows import resolve_predictions
    from zsl.runs.rundir import REVIEW_LOCK, lock_review

    run = Path(run_dir)
    if not run.is_dir():
        return ReviewSession(run, **kwargs), None  # raises: not a folder
    resolve_predictions(run)  # no labels.jsonl: refused before a lock file is made
    made = not os.path.lexists(run / REVIEW_LOCK)
    lock = lock_review(run)
    try:
        return ReviewSession(run, **kwargs), lock
    except BaseException:
        if lock is not None:
            if made:
                (run / REVIEW_LOCK).unlink(missing_ok=True)
            os.close(lock)
        raise


def _report_skipped(session: ReviewSession) -> None:
    if session.bad:
        lines = ", ".join(str(b.line) for b in session.bad[:5]) + (", ..." if len(session.bad) > 5 else "")
        print(f"warning: {len(session.bad)} row(s) of {session.bad[0].path} could not be read and are not shown "
              f"(lines {lines}; first: {session.bad[0].reason}). Fix: repair those lines (or rerun `zsl label`) to "
              "review those items.", file=sys.stderr)


def serve(run_dir: str | os.PathLike[str], *, host: str = DEFAULT_HOST, port: int = 8765, sort: str = "label-quality",
          encoder: Any = None, adjust: bool = False, open_browser: bool = False, sock: socket.socket | None = None,
          ready: Any = None) -> None:
    """Serve the review page of ``run_dir`` until interrupted.

    Args:
        host: the address to bind (default 127.0.0.1: this machine only). Any other address lets
            other machines read the run's texts and write its decisions; a warning says so.
        port: the port (0: a free one).
        sort, encoder, adjust: see :class:`ReviewSession`.
        open_browser: open the page in the default browser.
        sock: an already bound socket (tests); ``host``/``port`` are then ignored.
        ready: called with the page's URL (with its token) and the uvicorn server once it listens.

    Raises:
        InputError: a port outside 0-65535, a busy port, an unknown host (one line naming it and the fix).
    """
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError(f"zsl review needs FastAPI and uvicorn. Fix: {_INSTALL}.") from None
    if sock is None:
        sock = _bind(host, port)  # first: a busy port is said at once, not after minutes of scoring
        if host not in ("127.0.0.1", "localhost", "::1"):
            print(f"warning: serving on {host}: anyone who can reach this address and has the URL's token can "
                  "read the run's items and change reviewed.jsonl. Use the default 127.0.0.1 unless you mean it.",
                  file=sys.stderr)
    if sort == "label-quality":
        print("zsl review: label-quality scores from quality.json, or computed now if it is missing or stale "
              "(embedding the texts, then training a student 5 times: minutes for 10,000 items)", file=sys.stderr)
    try:
        session, lock = _open_session(run_dir, sort=sort, encoder=encoder, adjust=adjust)
    except BaseException:
        sock.close()
        raise
    _report_skipped(session)
    loopback = sock.getsockname()[0] in ("127.0.0.1", "::1")
    token = secrets.token_urlsafe(32)
    app = make_app(session, allowed_hosts=["127.0.0.1", "localhost", "[::1]"] if loopback else None, token=token)
    sock.listen(128)  # connections made before uvicorn's loop runs wait in the backlog instead of being refused
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{'[' + bound_host + ']' if ':' in bound_host else bound_host}:{bound_port}/?token={token}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    print(f"zsl review: {len(session.rows)} items ({session.sort} order), {len(session.store.decisions)} reviewed; "
          f"decisions go to {session.store.path}\nopen {url}  (Ctrl-C to stop)", file=sys.stderr)
    if ready is not None:
        ready(url, server)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    try:
        server.run(sockets=[sock])
    finally:
        if lock is not None:
            os.close(lock)


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zsl review</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font:15px/1.45 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d232b}
 header{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#1d232b;color:#fff}
 header b{font-size:1.05em} #progress{margin-left:auto} #bar{height:4px;background:#3b82f6;width:0}
 main{max-width:980px;margin:1em auto;padding:0 1em}
 .card{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:1em 1.2em;margin-bottom:1em}
 #text{white-space:pre-wrap;font-size:1.1em} #meta{color:#5b6673;font-size:.9em;margin-bottom:.5em}
 #img{max-width:100%;max-height:420px} #media{display:flex;gap:1em;align-items:flex-start;flex-wrap:wrap}
 #phrases{flex:1 1 14em;font-size:.95em} #phraselist{margin:.3em 0 0;padding-left:1.2em;color:#34495e}
 .chip{display:inline-flex;align-items:center;gap:.4em;margin:.25em .3em .25em 0;padding:.25em .6em;border-radius:999px;
  border:1px solid #9db4d6;background:#e8f0fc;cursor:pointer;user-select:none}
 .chip.removed{background:#fff;border-style:dashed;color:#8a939e;text-decoration:line-through}
 .chip.added{background:#e6f6ea;border-color:#7cc08e} .chip .k{font-size:.75em;color:#5b6673}
 .chip .s{font-size:.8em;color:#34495e} .anc{color:#8a939e;font-size:.85em} .anc::after{content:" › "} .doubt,.chip .s.doubt{color:#b4432d;font-size:.8em}
 #search{width:100%;box-sizing:border-box;padding:.5em;font-size:1em;border:1px solid #b8c0ca;border-radius:6px}
 #matches div{padding:.25em .5em;cursor:pointer} #matches div.sel,#matches div:hover{background:#e8f0fc}
 .row{display:flex;gap:.6em;align-items:center;flex-wrap:wrap} button{font-size:.95em;padding:.4em .9em}
 .keys{color:#5b6673;font-size:.85em} .done{color:#1f7a35;font-weight:600} #msg{color:#b4432d}
 #notice{background:#fff4e5;border:1px solid #f0b35b;border-radius:8px;padding:.6em 1em;margin-bottom:1em}
</style></head><body>
<header><b>zsl review</b><span id="run"></span><span id="progress">…</span></header><div id="bar"></div>
<main>
 <div id="notice" hidden></div>
 <div class="card"><div id="meta"></div><div id="text"></div>
  <div id="media"><img id="img" alt="" hidden><div id="phrases" hidden><b>The VLM saw</b><ul id="phraselist"></ul></div></div></div>
 <div class="card"><div class="row"><b>Labels</b><span id="status"></span></div><div id="chips"></div>
  <div id="hint" class="doubt"></div></div>
 <div class="card"><input id="search" placeholder="Add a label: type to search (/)" autocomplete="off">
  <div id="matches"></div></div>
 <div class="row"><button id="prev">← Previous</button><button id="next">Accept &amp; next (Enter)</button>
  <button id="skip">Skip (s)</button><span id="msg"></span></div>
 <p class="keys">Keys: Enter or → accept as shown and go on · ← previous · 1-9 remove/restore a label ·
  / search labels (Enter adds the first match, Esc leaves) · s skip. Every change is saved at once.</p>
</main>
<script>
"use strict";
const $ = id => document.getElementById(id);
let labels = [], lower = [], names = [], item = null, chosen = [], state = null, sel = 0, ancestry = {};
function el(tag, cls, text){const e=document.createElement(tag); if(cls) e.className=cls; if(text!==undefined) e.textContent=text; return e;}
async function api(path, body){
  const r = await fetch(path, body ? {method:"POST", headers:{"Content-Type":"application/json"}, body:JSON.stringify(body)} : {});
  if(!r.ok){const t = await r.text(); $("msg").textContent = "Error: " + t; throw new Error(t);}
  return r.json();
}
function pathOf(l){ return ancestry[l] || []; }
function named(node, l){  // a label with its path: the ancestors muted, the label itself prominent
  const a = pathOf(l); if(a.length) node.append(el("span", "anc", a.join(" › ")));
  node.append(el("span", "l", l)); return node;
}
function progress(n, total){
  $("progress").textContent = n + " / " + total + " reviewed";
  $("bar").style.width = (total ? 100*n/total : 0) + "%";
}
async function show(pos){
  item = await api("/api/item/" + pos);
  $("msg").textContent = "";
  const q = item.quality;
  $("meta").textContent = "Item " + (item.pos+1) + " of " + item.total + " · id " + item.id +
    (q ? " · label quality " + q.score.toFixed(3) + (q.issue ? " (flagged)" : "") : "");
  if(item.kind === "image"){ $("img").hidden=false; $("img").src="/api/image/"+item.pos; $("text").textContent=""; }
  else { $("img").hidden=true; $("text").textContent = item.text; }
  const said = item.phrases || [];  // the VLM's own words, beside the photo: text only, never HTML
  $("phrases").hidden = !said.length;
  $("phraselist").replaceChildren(...said.map(p => el("li", "", p)));
  chosen = item.decision ? item.decision.labels.slice() : item.proposed.map(p => p.label);
  $("status").textContent = item.decision ? "reviewed (" + item.decision.action + ")" : "";
  $("status").className = item.decision ? "done" : "";
  const hint = [];
  if(q && q.doubted.length) hint.push("student doubts: " + q.doubted.join(", "));
  if(q && q.suggested.length) hint.push("student suggests: " + q.suggested.join(", "));
  $("hint").textContent = hint.join(" · ");
  progress(item.reviewed, item.total);
  drawChips();
}
function drawChips(){
  const box = $("chips"); box.replaceChildren();
  const shown = item.proposed.map(p => p.label);
  chosen.forEach(l => { if(!shown.includes(l)) shown.push(l); });
  const score = {}; item.proposed.forEach(p => score[p.label] = p.score);
  shown.forEach((l, i) => {
    const c = el("span", "chip" + (chosen.includes(l) ? "" : " removed") + (score[l] === undefined ? " added" : ""));
    c.dataset.label = l;
    if(i < 9) c.append(el("span", "k", String(i+1)));
    named(c, l);
    if(score[l] !== undefined && score[l] !== null) c.append(el("span", "s", Number(score[l]).toFixed(3)));
    const st = item.quality ? item.quality.student[l] : undefined;
    if(st !== undefined) c.append(el("span", "s" + (st < 0.5 ? " doubt" : ""), "student " + Number(st).toFixed(2)));
    c.title = chosen.includes(l) ? "click to remove" : "click to restore";
    c.onclick = () => toggle(l);
    box.append(c);
  });
}
async function save(){
  const r = await api("/api/decide", {id: item.id, labels: chosen});
  item.decision = r.decision; item.reviewed = r.reviewed;
  $("status").textContent = "saved (" + r.decision.action + ")"; $("status").className = "done";
  progress(r.reviewed, r.total);
}
async function toggle(l){
  chosen = chosen.includes(l) ? chosen.filter(x => x !== l) : chosen.concat([l]);
  drawChips(); await save();
}
async function next(){ await save(); if(item.pos + 1 < item.total) await show(item.pos + 1); else $("msg").textContent = "That was the last item."; }
function matches(){
  const q = $("search").value.trim().toLowerCase(), box = $("matches"); box.replaceChildren();
  if(!q) return [];
  // the label's own name first (starting with, then holding the query), then any part of its path
  const first = [], rest = [], onPath = [];
  for(let i = 0; i < lower.length && first.length < 30; i++){
    const at = names[i].indexOf(q);
    if(at === 0) first.push(labels[i]); else if(at > 0 && rest.length < 30) rest.push(labels[i]);
    else if(at < 0 && onPath.length < 30 && lower[i] !== names[i] && lower[i].includes(q)) onPath.push(labels[i]);
  }
  const found = first.concat(rest, onPath).slice(0, 30);
  sel = Math.min(sel, Math.max(found.length - 1, 0));
  found.forEach((l, i) => { const d = named(el("div", i === sel ? "sel" : ""), l); d.dataset.label = l;
    d.onclick = () => add(l); box.append(d); });
  if(!found.length) box.append(el("div", "", "no label matches"));
  return found;
}
async function add(l){
  $("search").value = ""; $("matches").replaceChildren(); sel = 0;
  if(!chosen.includes(l)){ chosen.push(l); drawChips(); await save(); }
}
$("search").addEventListener("input", () => { sel = 0; matches(); });
$("search").addEventListener("keydown", e => {
  if(e.key === "Enter"){ e.preventDefault(); const m = matches(); if(m.length) add(m[sel]); }
  else if(e.key === "Escape"){ $("search").value = ""; matches(); $("search").blur(); }
  else if(e.key === "ArrowDown"){ e.preventDefault(); sel++; matches(); }
  else if(e.key === "ArrowUp"){ e.preventDefault(); sel = Math.max(0, sel-1); matches(); }
});
document.addEventListener("keydown", e => {
  if(e.target === $("search") || e.ctrlKey || e.metaKey || e.altKey || !item) return;
  if(e.key === "Enter" || e.key === "ArrowRight"){ e.preventDefault(); next(); }
  else if(e.key === "ArrowLeft"){ e.preventDefault(); if(item.pos > 0) show(item.pos - 1); }
  else if(e.key === "s"){ if(item.pos + 1 < item.total) show(item.pos + 1); }
  else if(e.key === "/"){ e.preventDefault(); $("search").focus(); }
  else if(/^[1-9]$/.test(e.key)){ const c = document.querySelectorAll("#chips .chip")[Number(e.key)-1]; if(c) toggle(c.dataset.label); }
});
$("next").onclick = next; $("prev").onclick = () => { if(item.pos > 0) show(item.pos - 1); };
$("skip").onclick = () => { if(item.pos + 1 < item.total) show(item.pos + 1); };
(async () => {
  history.replaceState(null, "", "/");  // the token now lives in the page's cookie, not in the address bar
  state = await api("/api/state");
  $("run").textContent = state.run + " · " + state.sort + " order";
  if(state.skipped_rows){
    $("notice").hidden = false;
    $("notice").textContent = state.skipped_rows + " row(s) of labels.jsonl could not be read and are not shown here " +
      "(first: " + state.skipped.join("; ") + "). Repair those lines to review those items.";
  }
  labels = await api("/api/labels"); names = labels.map(l => l.toLowerCase());
  const parents = state.tree ? await api("/api/parents") : null;
  if(parents){
    const up = {}; labels.forEach((l, i) => { if(parents[i] !== null) up[l] = parents[i]; });
    labels.forEach(l => { const a = []; for(let p = up[l]; p !== undefined && a.length < labels.length; p = up[p]) a.unshift(p);
      if(a.length) ancestry[l] = a; });
  }
  lower = labels.map((l, i) => pathOf(l).concat([l]).join(" > ").toLowerCase());
  await show(state.start);
})();
</script></body></html>
"""
