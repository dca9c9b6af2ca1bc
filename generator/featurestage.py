"""The features stage: the dataset index to int8 feature maps of every split.

`build_features(project, index, out_npz)` loads each split's int16 clips
(generator.dataset.load_split), augments the training split
(generator.augment.augment), computes the fixed-point features
(generator.features.compute_batch) and writes one npz with x_train, y_train,
x_validation, y_validation, x_test, y_test (x: int8 [N, frames, bins], the
model's int8 input as is; y: int64 indices into spec.classes).

Each clip's features are cached on disk under <cache>/<front end hash>/<clip hash>.npy,
keyed by the clip's samples and every FrontEnd constant, so a spec change that
touches neither the audio nor the features recomputes nothing. The cache is
$MICFORGE_CACHE/features, else <build folder>/.cache/features.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

import numpy as np

from . import features as F
from .dataset import SPLITS
from .fileio import write_if_changed
from .paths import REPO
from .render import content_hash
from .spec import Project

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same arrays give the same npz bytes


def cache_dir(build_root: Path | None = None) -> Path:
    """$MICFORGE_CACHE/features, else <build_root>/.cache/features (build_root: the build
    folder holding the projects, default build/), so every build folder keeps its own state."""
    env = os.environ.get("MICFORGE_CACHE")
    if env:
        return Path(env) / "features"
    return (build_root or REPO / "build") / ".cache" / "features"


def cached_features(fe: F.FrontEnd, clips: np.ndarray, cache: Path | None = None,
                    bar=None) -> tuple[np.ndarray, int]:
    """int8 features [N, frames, bins] of int16 clips, from the cache where present.

    Returns the features and how many clips had to be computed; `bar` (console.progress)
    advances by the clips computed.
    """
    clips = np.ascontiguousarray(clips, dtype=np.int16)
    folder = (cache or cache_dir()) / content_hash(fe.feature_constants())
    out = np.zeros((len(clips), fe.num_frames, fe.num_bins), dtype=np.int8)
    missing, paths = [], []
    for i, clip in enumerate(clips):
        path = folder / (hashlib.sha256(clip.tobytes()).hexdigest()[:32] + ".npy")
        paths.append(path)
        try:
            x = np.load(path, allow_pickle=False)
            if x.shape == out.shape[1:] and x.dtype == np.int8:
                out[i] = x
                continue
        except (OSError, ValueError):
            pass
        missing.append(i)
    for start in range(0, len(missing), 256):
        rows = missing[start:start + 256]
        computed = F.compute_batch(fe, clips[rows])
        for i, x in zip(rows, computed):
            out[i] = x
            write_if_changed(paths[i], _npy_bytes(x))
        if bar is not None:
            bar.update(len(rows))
    return out, len(missing)


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A deterministic .npz (sorted members, fixed timestamps), loadable with np.load."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, _npy_bytes(arrays[name]))
    return buf.getvalue()


def augment_roles(project: Project) -> dict:
    """The project-dependent arguments of augment.augment: which labels detect, which serve
    as backgrounds, and the background folder."""
    spec = project.spec
    bg = spec.augmentation.background
    background = bg.classes if bg.classes is not None else [
        c for c in spec.classes if c not in spec.detect_classes]
    return {"detect": [spec.classes.index(c) for c in spec.detect_classes],
            "background_labels": [spec.classes.index(c) for c in background],
            "folder": project.resolve(bg.folder) if bg.folder else None}


def build_features(project: Project, index: dict, out_npz: Path) -> None:
    """Write the features npz of every split (train augmented) for `project`."""
    from .augment import augment
    from .console import progress
    from .dataset import load_split
    spec = project.spec
    fe = F.design(spec)
    arrays = {}
    for split in SPLITS:
        clips, labels = load_split(project, index, split)
        if split == "train":
            clips, labels = augment(clips, labels, spec.augmentation, spec.audio.sample_rate,
                                    **augment_roles(project))
        with progress(len(clips), f"[{spec.name}] features {split}", "clip") as bar:
            arrays[f"x_{split}"], computed = cached_features(
                fe, clips, cache_dir(Path(out_npz).parents[2]), bar)
        print(f"{split}: {len(clips)} clips, {computed} computed, {len(clips) - computed} "
              f"from the cache")
        arrays[f"y_{split}"] = np.asarray(labels, dtype=np.int64)
    write_if_changed(out_npz, npz_bytes(arrays))
