"""A byte-stable Keras 3 `.keras` file: equal models give equal bytes.

`save_stable(model, path) -> bool` saves `model` with Keras (`model.save`), rewrites the archive
canonically (`canonical`) and writes it atomically, only when its bytes changed (fileio); it
returns True when it wrote. `canonical(archive) -> bytes` is the rewrite alone: it needs zipfile,
json and h5py, not Keras, so `micforge diff` compares models saved before this existed too.

What differs between two `model.save` calls of one model (Keras 3.15, h5py 3.14, HDF5 1.14),
and what the canonical form does about it:

- metadata.json's `date_saved` is the wall clock: dropped (`keras_version` stays). Keras never
  reads metadata.json back.
- config.json's `shared_object_id` is Python's id() of an object serialized more than once, a
  memory address that changes with every process; the layers' shared DTypePolicy gets one. The
  ids only pair up the copies of one object, so they are renumbered 1, 2, ... in order of first
  appearance (keys sorted). On DTypePolicy configs they are dropped: a policy is immutable and
  fully described by its config, and a loaded model's layers no longer share one (a save after
  a load has no ids), so the saved and the reloaded model give the same bytes. Keys are sorted.
- the zip entry of model.weights.h5 carries the save time (Keras dates the JSON entries
  1980-01-01 already): every entry gets that date, mode 0644, no compression (as Keras writes
  them), in name order.
- model.weights.h5 itself came out byte-identical for equal weights (h5py creates datasets
  without timestamps; Keras writes in a fixed order). It is rewritten anyway from its logical
  content (groups, datasets and attributes in name order, track_times=False, the file format
  pinned with LIBVER), so its bytes depend on the weights alone, not on the order or the h5py
  defaults they were written with.

Not a matter of the file format, so not rewritten here: an optimizer without a name is named
`adam`, `adam_1`, ... by how many were made before it in the process (the pipeline runs several
stages in one process); whoever builds the model names it (`Adam(..., name="adam")`).

The bytes are stable for one Keras, h5py and HDF5 version (keras_version is in the file).
"""

from __future__ import annotations

import io
import json
import tempfile
import zipfile
from pathlib import Path

from .fileio import write_if_changed

CONFIG, METADATA, WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip entry can hold
UNIX = 3  # ZipInfo.create_system: the mode bits in external_attr are Unix ones
FILE_MODE, DIR_MODE = 0o100644, 0o040755
LIBVER = ("earliest", "v110")  # HDF5 file-format bounds: the oldest format that holds the data


def save_stable(model, path: str | Path) -> bool:
    """Save `model` as a canonical .keras file at `path` (atomically, only when changed)."""
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "model.keras"
        model.save(saved)
        data = canonical(saved.read_bytes())
    return write_if_changed(path, data)


def canonical(archive: bytes) -> bytes:
    """The canonical form of a .keras archive (see the module docstring); idempotent."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    if CONFIG in members:
        members[CONFIG] = canonical_config(members[CONFIG])
    if METADATA in members:
        meta = json.loads(members[METADATA])
        meta.pop("date_saved", None)
        members[METADATA] = json.dumps(meta, sort_keys=True).encode()
    if WEIGHTS in members:
        members[WEIGHTS] = canonical_h5(members[WEIGHTS])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = UNIX
            info.external_attr = ((DIR_MODE << 16) | 0x10 if name.endswith("/")
                                  else FILE_MODE << 16)
            zf.writestr(info, members[name])
    return out.getvalue()


def canonical_config(text: bytes) -> bytes:
    """config.json with sorted keys, DTypePolicy sharing dropped and the other shared-object
    ids renumbered by first appearance."""
    config = json.loads(text)
    ids: dict = {}

    def walk(node):
        if isinstance(node, dict):
            if "shared_object_id" in node:
                if str(node.get("class_name", "")).endswith("DTypePolicy"):
                    del node["shared_object_id"]
                else:
                    node["shared_object_id"] = ids.setdefault(node["shared_object_id"],
                                                              len(ids) + 1)
            for key in sorted(node):
                walk(node[key])
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(config)
    return json.dumps(config, sort_keys=True).encode()


def canonical_h5(data: bytes) -> bytes:
    """An HDF5 file rebuilt from the logical content of `data`: groups, datasets and attributes
    in name order, no timestamps, the file format pinned (LIBVER)."""
    import h5py

    out = io.BytesIO()
    with h5py.File(io.BytesIO(data), "r") as src, \
            h5py.File(out, "w", libver=LIBVER, track_order=False) as dst:
        _copy_group(src, dst)
    return out.getvalue()


def _copy_attrs(src, dst) -> None:
    for key in sorted(src.attrs):
        dst.attrs.create(key, src.attrs[key], dtype=src.attrs.get_id(key).dtype)


def _copy_group(src, dst) -> None:
    import h5py

    _copy_attrs(src, dst)
    for name in sorted(src):
        link = src.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{src.name}/{name}: a {type(link).__name__} in the weights file; "
                             f"a Keras weights file holds only groups and datasets")
        obj = src[name]
        if isinstance(obj, h5py.Group):
            _copy_group(obj, dst.create_group(name, track_order=False))
        else:
            ds = dst.create_dataset(name, data=obj[()], dtype=obj.dtype, track_times=False)
            _copy_attrs(obj, ds)
