"""Write layerdiff dumps from any Python engine (numpy only).

A dump is a directory of ``NNNN-key.npy`` files and a ``manifest.json``
written last, atomically (docs/dump-format.md is the contract). Record your
engine's activations under any names; ``layerdiff compare REF DUMP`` lines
them up with a llama.cpp dump (by name, or with ``--names FILE``).

    from layerdiff_capture import Recorder

    with Recorder("out/mine", tokens=[1, 15043, 3186], model="m.gguf",
                  producer="my-engine 0.1") as rec:
        rec.record("tok_embeddings", h)           # numpy (T, n_embd)
        rec.record("layers.0.attention.scores", s, op="MUL_MAT")  # (heads, T, T)

Arrays are taken in numpy's natural layout (row-major, tokens first): the
ggml shape ``ne`` written to the manifest is the numpy shape reversed, so a
``(T, n_embd)`` array is ``ne = [n_embd, T]``, as llama.cpp's tensors are.
An array indexed the ggml way (``a[i0, i1, ...]``, ``ne[0]`` first) is
recorded with ``layout="ggml"``. Values are written as float32.

``TorchRecorder`` records the outputs of a PyTorch model's modules by their
``named_modules()`` names through forward hooks.
"""

import hashlib
import json
import math
import os
import re
import tempfile

import numpy as np

try:  # optional: only TorchRecorder's tensor test uses it
    import torch as _torch
except ImportError:  # torch is not required
    _torch = None

__all__ = ["Recorder", "TorchRecorder", "KIT_VERSION", "node_file_name"]

#: Version of this capture kit, written in the manifest's ``producer``.
KIT_VERSION = "0.1.0"

FORMAT_NAME = "layerdiff-dump"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

# Files of this form belong to a dump with a manifest (Go: NodeFileName).
_DUMP_FILE = re.compile(r"^[0-9]{4,}-.*\.npy$")
# A model at most this large is hashed (SHA-256) by default.
_HASH_LIMIT = 256 << 20


def _sanitize(key, keep=""):
    out = []
    for ch in key:
        if ch.isascii() and (ch.isalnum() or ch in "._-" + keep):
            out.append(ch)
        else:
            out.append("_")
        if len(out) >= 96:
            break
    return "".join(out)


def node_file_name(index, key):
    """The file name layerdiff's dumper gives node ``index`` with ``key``:
    the zero-padded index, the key with characters outside [A-Za-z0-9._-]
    replaced by '_' (at most 96 of them), and ".npy"."""
    return "%04d-%s.npy" % (index, _sanitize(key))


def _json_float(x):
    """A float as JSON allows it: NaN and infinities become strings."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def _stats(flat):
    """The manifest statistics of float32 values in ggml (flat) order: the
    sum accumulated in float32 in order, as llama.cpp's eval callback does."""
    n = flat.size
    if n == 0:
        return {"sum": 0.0, "min": 0.0, "max": 0.0, "nan": 0, "inf": 0}
    nan = int(np.count_nonzero(np.isnan(flat)))
    inf = int(np.count_nonzero(np.isinf(flat)))
    s = float(np.cumsum(flat, dtype=np.float32)[-1])
    if nan == n:
        lo = hi = 0.0
    else:
        lo, hi = float(np.nanmin(flat)), float(np.nanmax(flat))
    return {"sum": _json_float(s), "min": _json_float(lo), "max": _json_float(hi),
            "nan": nan, "inf": inf}


def _write_atomic(path, write):
    """Write path through a temporary file in the same directory: write(f),
    flush, fsync, rename."""
    d = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _npy_bytes_header(shape):
    """A .npy 1.0 header for a C-order little-endian float32 array, padded
    with spaces and a newline to a multiple of 64 bytes, as numpy does."""
    if len(shape) == 1:
        s = "(%d,)" % shape[0]
    else:
        s = "(" + ", ".join(str(int(d)) for d in shape) + ")"
    d = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }" % s
    total = 10 + len(d) + 1
    pad = (-total) % 64
    h = d + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode("latin1")


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Recorder:
    """Records named activations into a layerdiff dump directory.

    out_dir   the dump directory; created if missing. An existing non-empty
              directory is refused (FileExistsError) unless force=True, which
              first removes its manifest.json, then its .npy files.
    tokens    the token ids the engine evaluated, from position 0 (BOS
              included if it was added).
    prompt    the text that was tokenized ("" when ids were given).
    model     path of the model file; its size (and, when hash_model is
              true, or None and the file is at most 256 MiB, its SHA-256)
              are recorded.
    producer  your engine's name and version, e.g. "my-engine 0.1"; the
              manifest's ``producer`` is this and the kit's version.
    manifest  False writes a plain directory of ``KEY.npy`` files without
              manifest.json (layerdiff reads those too, without graph order).
    architecture, hparams
              optional ``model.architecture`` and ``model.hparams`` (GGUF
              metadata keys as in layerdiff's own dumps, e.g.
              "llama.embedding_length").

    Use it as a context manager, or call close() to write the manifest; a
    directory without a manifest is an incomplete dump.
    """

    def __init__(self, out_dir, tokens=None, prompt="", model=None, producer="unknown-engine",
                 force=False, manifest=True, architecture="", hparams=None, hash_model=None,
                 extra=None):
        self.out_dir = out_dir
        self.tokens = [int(t) for t in (tokens if tokens is not None else [])]
        self.prompt = prompt or ""
        self.model = model
        self.producer = "%s (layerdiff_capture %s)" % (producer, KIT_VERSION)
        self.with_manifest = bool(manifest)
        self.architecture = architecture or ""
        self.hparams = dict(hparams or {})
        self.hash_model = hash_model
        self.extra = dict(extra or {})
        for k in self.extra:
            if not k.startswith("x_"):
                raise ValueError("extra manifest field %r: name it x_<engine>_..." % k)
        self.nodes = []
        self._count = {}
        self._used = set()
        self._closed = False
        self._prepare(force)

    # -- directory -------------------------------------------------------

    def _prepare(self, force):
        d = self.out_dir
        if os.path.exists(d) and not os.path.isdir(d):
            raise FileExistsError("%s exists and is a file, not a dump directory" % d)
        if os.path.isdir(d):
            ents = os.listdir(d)
            if ents and not force:
                raise FileExistsError("%s exists and is not empty; pass force=True to replace it" % d)
            if ents:
                # The manifest first: a directory without one is never taken
                # for a complete dump while the rest is replaced.
                m = os.path.join(d, MANIFEST)
                if os.path.exists(m):
                    os.unlink(m)
                for e in ents:
                    p = os.path.join(d, e)
                    if os.path.isfile(p) and (e.endswith(".npy") or e.startswith(".tmp-")):
                        os.unlink(p)
        else:
            os.makedirs(d)

    # -- keys --------------------------------------------------------------

    def _next_key(self, name):
        """name for its first node, name#N for the N-th; @I appended when
        that key is taken (Go: reference.KeyMaker)."""
        c = self._count.get(name, 0) + 1
        self._count[name] = c
        key = name if c == 1 else "%s#%d" % (name, c)
        if key in self._used:
            key += "@%d" % len(self.nodes)
        self._used.add(key)
        return key

    # -- recording ----------------------------------------------------------

    def record(self, name, array, op=None, layout="natural", src=None):
        """Record one activation and return its key.

        name    the engine's name for it (repeats get keys name#2, name#3...).
        array   anything numpy.asarray takes, or a torch tensor (detached and
                moved to the CPU); written as float32.
        op      optional ggml op name ("MUL_MAT", "ROPE", "SOFT_MAX"...) or
                your own; helps layerdiff align when names differ.
        layout  "natural": numpy's row-major layout, tokens first
                ((T, n_embd), (heads, T, T)); ne is the shape reversed.
                "ggml": the array is indexed a[i0, i1, i2, i3] with ne[0]
                first (a column-major engine's buffer seen through numpy);
                ne is its shape.
        src     optional list of source tensor names.
        """
        if self._closed:
            raise ValueError("record %r: recorder is closed" % name)
        if not isinstance(name, str) or not name:
            raise ValueError("record: name must be a non-empty string, got %r" % (name,))
        a = _to_numpy(array)  # numpy arrays, lists, torch tensors (detached)
        if a.dtype.kind == "c":
            raise TypeError("record %r: complex values are not supported" % name)
        a = a.astype(np.float32, copy=False)
        if layout == "natural":
            shape = a.shape
        elif layout == "ggml":
            a = a.T
            shape = a.shape
        else:
            raise ValueError("record %r: layout must be 'natural' or 'ggml', got %r" % (name, layout))
        a = np.ascontiguousarray(a)
        ne = [int(d) for d in reversed(shape)] or [1]
        while len(ne) > 1 and ne[-1] == 1:
            ne.pop()
        if len(ne) > 4:
            raise ValueError("record %r: numpy shape %s has %d dimensions other than leading 1s; "
                             "layerdiff tensors have at most 4" % (name, tuple(shape), len(ne)))
        npy_shape = tuple(reversed(ne))
        index = len(self.nodes)
        key = self._next_key(name)
        if self.with_manifest:
            fname = node_file_name(index, key)
        else:
            fname = _sanitize(key, keep="#") + ".npy"
            if _DUMP_FILE.match(fname):
                fname = "t" + fname
            if any(n["file"] == fname for n in self.nodes):
                raise ValueError("record %r: file %s already written (names too alike once "
                                 "sanitized for a plain .npy directory)" % (name, fname))
        hdr = _npy_bytes_header(npy_shape)
        data = a.astype("<f4", copy=False)

        def write(f):
            f.write(hdr)
            f.write(data.tobytes(order="C"))

        _write_atomic(os.path.join(self.out_dir, fname), write)
        self.nodes.append({
            "index": index, "key": key, "name": name, "op": op or "",
            "src": list(src or []), "type": "f32", "ne": ne, "file": fname,
            "is_view": False, "stats": _stats(data.reshape(-1)),
        })
        return key

    # -- manifest ------------------------------------------------------------

    def manifest(self):
        """The manifest as a dict (what close() writes)."""
        model = {"path": "", "size": 0, "sha256": "", "architecture": self.architecture,
                 "hparams": self.hparams}
        if self.model:
            model["path"] = str(self.model)
            if os.path.isfile(self.model):
                size = os.path.getsize(self.model)
                model["size"] = size
                h = self.hash_model
                if h or (h is None and size <= _HASH_LIMIT):
                    model["sha256"] = _sha256(self.model)
        m = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "layerdiff_version": self.producer,
            "producer": self.producer,
            "llamacpp_commit": "",
            "llamacpp_source": "",
            "system_info": "",
            "model": model,
            "prompt": self.prompt,
            "tokens": self.tokens,
            "output_all": True,
            "nodes": self.nodes,
        }
        m.update(self.extra)
        return m

    def close(self):
        """Write manifest.json (atomically, after every .npy file). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self.with_manifest:
            return
        b = (json.dumps(self.manifest(), indent=1, allow_nan=False) + "\n").encode("utf-8")
        _write_atomic(os.path.join(self.out_dir, MANIFEST), lambda f: f.write(b))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # An engine that failed half way leaves no manifest: the directory is
        # visibly incomplete rather than a plausible, truncated dump.
        if exc_type is None:
            self.close()
        else:
            self._closed = True
        return False


def _to_numpy(t):
    """A tensor (torch, or anything with detach/cpu/numpy) or array as a
    float32 numpy array."""
    if isinstance(t, np.ndarray):
        return t
    if hasattr(t, "detach"):
        t = t.detach()
    if hasattr(t, "float"):
        t = t.float()  # bfloat16 has no numpy dtype
    if hasattr(t, "cpu"):
        t = t.cpu()
    if hasattr(t, "numpy"):
        return np.asarray(t.numpy())
    return np.asarray(t)


def _is_tensor(x):
    if isinstance(x, np.ndarray):
        return True
    if _torch is not None and _torch.is_tensor(x):
        return True
    return hasattr(x, "detach") and hasattr(x, "numpy")


# ggml ops of common torch modules (the op helps layerdiff align nodes).
_TORCH_OPS = {"Linear": "MUL_MAT", "Embedding": "GET_ROWS", "SiLU": "SILU", "GELU": "GELU"}


class TorchRecorder:
    """Records a PyTorch model's module outputs through forward hooks.

        rec = Recorder("out/hf", tokens=ids, producer="transformers 4.x")
        with TorchRecorder(rec, model):
            model(torch.tensor([ids]))
        rec.close()

    Every module of ``model.named_modules()`` (the root, named "", is left
    out) gets a forward hook that records its output tensor — the first
    element of a tuple or list output — under its module name, detached
    and converted to float32 numpy. A module run twice is recorded twice
    (keys name, name#2). Outputs that are not tensors are skipped.

    include   optional predicate name -> bool, or a collection of names:
              only those modules are hooked.
    squeeze_batch
              drop a leading batch dimension of size 1 ((1, T, C) -> (T, C)).

    Works with anything that has named_modules() and modules with
    register_forward_hook(fn) returning a handle with remove(); torch
    itself is imported only when present.
    """

    def __init__(self, recorder, model, include=None, squeeze_batch=True):
        self.recorder = recorder
        self.squeeze_batch = squeeze_batch
        self.handles = []
        if include is None:
            keep = lambda n: True  # noqa: E731
        elif callable(include):
            keep = include
        else:
            names = set(include)
            keep = names.__contains__
        for name, module in model.named_modules():
            if name == "" or not keep(name):
                continue
            self.handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def hook(module, inputs, output):
            out = output
            if isinstance(out, (tuple, list)):
                if not out:
                    return None
                out = out[0]
            if not _is_tensor(out):
                return None
            a = _to_numpy(out)
            if self.squeeze_batch and a.ndim >= 2 and a.shape[0] == 1:
                a = a[0]
            self.recorder.record(name, a, op=_TORCH_OPS.get(type(module).__name__, ""))
            return None
        return hook

    def remove(self):
        """Remove every hook."""
        for h in self.handles:
            h.remove()
        self.handles = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.remove()
        return False
