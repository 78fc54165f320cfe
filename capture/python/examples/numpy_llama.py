#!/usr/bin/env python3
"""numpy_llama: a float32 LLaMA forward pass in numpy, recording its
activations with layerdiff_capture. It stands for "your engine" in
docs/engines.md: written from the LLaMA paper and Meta's reference code,
not from layerdiff's Go forward pass, it reads the GGUF itself
(numpy_gguf.py) and names its activations as Meta's model does.

    numpy_llama.py --model m.gguf --tokens 1,493,361 --out mine
    numpy_llama.py --model m.gguf --tokens-from ref --out mine --bug rope-halves

Options (--help lists them): --names meta|llamacpp, --layout natural|ggml,
--sparse, --no-manifest, --force, --bug NAME (a planted bug, see BUGS).
"""

import argparse
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

from numpy_gguf import GGUF  # noqa: E402
import layerdiff_capture  # noqa: E402

VERSION = "0.1.0"

#: Planted bugs, each a mistake real engines have made.
BUGS = {
    "rope-halves": "RoPE rotates the two halves of each head (NEOX) instead of adjacent pairs",
    "pos-offset": "positions start at 1 instead of 0",
    "rope-base": "RoPE base 500000 instead of the model's llama.rope.freq_base",
    "softmax-scale": "attention scores scaled by 1/head_dim instead of 1/sqrt(head_dim)",
    "eps-x10": "RMS norm epsilon ten times the model's",
    "eps-div10": "RMS norm epsilon a tenth of the model's",
    "gqa-tile": "query head h reads kv head h % n_kv instead of h // (n_head / n_kv)",
    "gelu": "GELU instead of SiLU in the gated FFN",
    "transposed-weight": "the attention output projection wo is used transposed",
    "no-bos": "the first token is dropped when it is BOS",
}

# Each activation: (meta name, llama.cpp name, ggml op). {L} is the layer.
NAMES = [
    ("tok_embeddings", "inp_embd", "GET_ROWS"),
    ("layers.{L}.attention_norm.rms", "norm-{L}", "RMS_NORM"),
    ("layers.{L}.attention_norm", "attn_norm-{L}", "MUL"),
    ("layers.{L}.attention.wq", "Qcur-{L}", "MUL_MAT"),
    ("layers.{L}.attention.wk", "Kcur-{L}", "MUL_MAT"),
    ("layers.{L}.attention.wv", "Vcur-{L}", "MUL_MAT"),
    ("layers.{L}.attention.q_rope", "Qcur-{L}", "ROPE"),
    ("layers.{L}.attention.k_rope", "Kcur-{L}", "ROPE"),
    ("layers.{L}.attention.scores", "kq-{L}", "MUL_MAT"),
    ("layers.{L}.attention.probs", "kq_soft_max-{L}", "SOFT_MAX"),
    ("layers.{L}.attention.context", "kqv_out-{L}", "CONT"),
    ("layers.{L}.attention.wo", "attn_out-{L}", "MUL_MAT"),
    ("layers.{L}.residual", "ffn_inp-{L}", "ADD"),
    ("layers.{L}.ffn_norm.rms", "norm-{L}", "RMS_NORM"),
    ("layers.{L}.ffn_norm", "ffn_norm-{L}", "MUL"),
    ("layers.{L}.feed_forward.w1", "ffn_gate-{L}", "MUL_MAT"),
    ("layers.{L}.feed_forward.w3", "ffn_up-{L}", "MUL_MAT"),
    ("layers.{L}.feed_forward.act", "ffn_swiglu-{L}", "SWIGLU"),
    ("layers.{L}.feed_forward.w2", "ffn_out-{L}", "MUL_MAT"),
    ("layers.{L}", "l_out-{L}", "ADD"),
    ("norm.rms", "norm", "RMS_NORM"),
    ("norm", "result_norm", "MUL"),
    ("output", "result_output", "MUL_MAT"),
]
_BY_META = {m: (l, op) for m, l, op in NAMES}
# The pre-weight RMS norms are not module outputs in Meta's code; only the
# llama.cpp naming records them (as norm-L, norm-L#2, norm).
_LLAMACPP_ONLY = {"layers.{L}.attention_norm.rms", "layers.{L}.ffn_norm.rms", "norm.rms"}
# --sparse keeps attn_norm-0, ffn_out-0 and result_output.
_SPARSE = {"layers.0.attention_norm", "layers.0.feed_forward.w2", "output"}


class Sink:
    """Sends activations to the recorder under the chosen names/layout."""

    def __init__(self, rec, names, layout, sparse):
        self.rec, self.names, self.layout, self.sparse = rec, names, layout, sparse

    def __call__(self, template, layer, a, natural=None):
        """a: the activation in llama.cpp's element order as a row-major
        array (tokens first, e.g. (T, heads, d) for roped q); natural: the
        same values as this engine holds them when that differs (heads
        first), used with --layout natural."""
        meta = template.replace("{L}", str(layer))
        if self.sparse and meta not in _SPARSE:
            return
        if self.names == "meta" and template in _LLAMACPP_ONLY:
            return
        lname, op = _BY_META[template]
        name = meta if self.names == "meta" else lname.replace("{L}", str(layer))
        if self.layout == "natural":
            self.rec.record(name, a if natural is None else natural, op=op)
        else:
            # the ggml view of the values: a[i0, i1, ...], ne[0] first
            self.rec.record(name, a.T, op=op, layout="ggml")


def rms_norm(x, eps):
    """x / sqrt(mean(x^2) + eps) over the last axis, in float32."""
    ms = np.mean(np.square(x, dtype=np.float32), axis=-1, keepdims=True, dtype=np.float32)
    return (x / np.sqrt(ms + np.float32(eps))).astype(np.float32)


def rope(x, pos, base, n_rot, halves, scale=1.0, factors=None, mscale=1.0):
    """Rotary embedding of x (T, heads, d) at positions pos (T,). Pair i
    turns by scale * pos * base^(-2i/n_rot) / factors[i] (linear scaling,
    Llama 3's rope_freqs), its cos and sin multiplied by mscale. Pairs are
    adjacent dims (2i, 2i+1) (llama's GGUF layout), or (i, i + n_rot/2)
    with halves. Only the first n_rot dims rotate."""
    half = n_rot // 2
    inv = base ** (-np.arange(half, dtype=np.float64) * 2.0 / n_rot)
    if factors is not None:
        inv = inv / factors.astype(np.float64)
    ang = scale * pos.astype(np.float64)[:, None] * inv[None, :]  # (T, half)
    cos = (mscale * np.cos(ang)).astype(np.float32)[:, None, :]
    sin = (mscale * np.sin(ang)).astype(np.float32)[:, None, :]
    out = x.copy()
    if halves:
        a, b = x[..., :half], x[..., half:n_rot]
        out[..., :half] = a * cos - b * sin
        out[..., half:n_rot] = a * sin + b * cos
    else:
        a, b = x[..., 0:n_rot:2], x[..., 1:n_rot:2]
        out[..., 0:n_rot:2] = a * cos - b * sin
        out[..., 1:n_rot:2] = a * sin + b * cos
    return out


def silu(x):
    return (x / (np.float32(1) + np.exp(-x))).astype(np.float32)


def gelu(x):
    c = np.float32(math.sqrt(2.0 / math.pi))
    return (np.float32(0.5) * x * (np.float32(1) + np.tanh(c * (x + np.float32(0.044715) * x ** 3)))).astype(np.float32)


def softmax(x):
    m = np.max(x, axis=-1, keepdims=True)
    e = np.exp(x - m)
    return (e / np.sum(e, axis=-1, keepdims=True)).astype(np.float32)


class Llama:
    """The model's hyperparameters and dequantized float32 weights."""

    def __init__(self, g):
        arch = g.get("general.architecture")
        if arch != "llama":
            raise ValueError("%s: architecture %r, this engine runs llama only" % (g.path, arch))
        kv = lambda k, d=None: g.get("llama." + k, d)  # noqa: E731
        self.n_embd = int(kv("embedding_length"))
        self.n_layer = int(kv("block_count"))
        self.n_head = int(kv("attention.head_count"))
        self.n_kv = int(kv("attention.head_count_kv", self.n_head))
        self.head_dim = int(kv("attention.key_length", self.n_embd // self.n_head))
        self.n_rot = int(kv("rope.dimension_count", self.head_dim))
        self.rope_base = float(kv("rope.freq_base", 10000.0))
        self.eps = float(kv("attention.layer_norm_rms_epsilon", 1e-5))
        self.bos = g.get("tokenizer.ggml.bos_token_id")
        scaling = kv("rope.scaling.type", "linear")
        if scaling not in ("none", "linear"):
            raise ValueError("%s: rope scaling %r not supported (none, linear, rope_freqs factors)" % (g.path, scaling))
        factor = float(kv("rope.scaling.factor", 0.0) or kv("rope.scale_linear", 0.0) or 0.0)
        self.rope_scale = 1.0 / factor if factor and scaling == "linear" else 1.0
        self.rope_mscale = float(kv("rope.scaling.attn_factor", 1.0))
        self.rope_factors = g.tensor("rope_freqs.weight").reshape(-1) if "rope_freqs.weight" in g.tensors else None
        if self.rope_factors is not None and self.rope_factors.size != self.n_rot // 2:
            raise ValueError("%s: rope_freqs.weight has %d values, want n_rot/2 = %d"
                             % (g.path, self.rope_factors.size, self.n_rot // 2))
        if self.n_head % self.n_kv:
            raise ValueError("%s: %d heads not a multiple of %d kv heads" % (g.path, self.n_head, self.n_kv))
        self.g = g
        self.tok_embd = g.tensor("token_embd.weight")
        self.out_norm = g.tensor("output_norm.weight")
        self.output = g.tensor("output.weight") if "output.weight" in g.tensors else self.tok_embd

    def w(self, layer, name):
        n = "blk.%d.%s" % (layer, name)
        return self.g.tensor(n) if n in self.g.tensors else None

    def hparams(self):
        """The model's scalar llama.* metadata and general.file_type, as
        layerdiff's own dumps record them."""
        out = {}
        for k, v in self.g.kv.items():
            if (k.startswith("llama.") or k == "general.file_type") and not isinstance(v, list):
                out[k] = float(str(np.float32(v))) if isinstance(v, float) else v
        return out


def forward(m, tokens, emit, bugs=()):
    """Run tokens (ids from position 0) through m, calling emit(template,
    layer, values[, natural]) for every activation; returns the logits."""
    T = len(tokens)
    H, KV, d = m.n_head, m.n_kv, m.head_dim
    eps = m.eps * (10 if "eps-x10" in bugs else 0.1 if "eps-div10" in bugs else 1)
    base = 500000.0 if "rope-base" in bugs else m.rope_base
    pos = np.arange(T) + (1 if "pos-offset" in bugs else 0)
    scale = np.float32(1.0 / d if "softmax-scale" in bugs else 1.0 / math.sqrt(d))
    group = H // KV
    kv_of = [(h % KV) if "gqa-tile" in bugs else (h // group) for h in range(H)]
    act = gelu if "gelu" in bugs else silu
    mask = np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1)

    x = m.tok_embd[np.asarray(tokens)].astype(np.float32)
    emit("tok_embeddings", 0, x)
    for L in range(m.n_layer):
        n = rms_norm(x, eps)
        emit("layers.{L}.attention_norm.rms", L, n)
        xa = n * m.w(L, "attn_norm.weight")
        emit("layers.{L}.attention_norm", L, xa)
        proj = {}
        for key, meta in (("q", "wq"), ("k", "wk"), ("v", "wv")):
            y = xa @ m.w(L, "attn_%s.weight" % key).T
            b = m.w(L, "attn_%s.bias" % key)
            if b is not None:
                y = y + b
            proj[key] = y.astype(np.float32)
            emit("layers.{L}.attention." + meta, L, proj[key])
        ro = dict(halves="rope-halves" in bugs, scale=m.rope_scale, factors=m.rope_factors, mscale=m.rope_mscale)
        q = rope(proj["q"].reshape(T, H, d), pos, base, m.n_rot, **ro)      # (T, H, d)
        k = rope(proj["k"].reshape(T, KV, d), pos, base, m.n_rot, **ro)     # (T, KV, d)
        v = proj["v"].reshape(T, KV, d)
        emit("layers.{L}.attention.q_rope", L, q, q.transpose(1, 0, 2))
        emit("layers.{L}.attention.k_rope", L, k, k.transpose(1, 0, 2))
        qh = q.transpose(1, 0, 2)                      # (H, T, d)
        kh = k.transpose(1, 0, 2)[kv_of]               # (H, T, d): kv head per query head
        vh = v.transpose(1, 0, 2)[kv_of]
        scores = np.matmul(qh, kh.transpose(0, 2, 1))  # (H, T, T), unscaled, unmasked
        emit("layers.{L}.attention.scores", L, scores)
        probs = softmax(scores * scale + mask)
        emit("layers.{L}.attention.probs", L, probs)
        ctx = np.matmul(probs, vh).transpose(1, 0, 2).reshape(T, H * d)
        emit("layers.{L}.attention.context", L, ctx)
        wo = m.w(L, "attn_output.weight")
        if "transposed-weight" in bugs:
            if wo.shape[0] != wo.shape[1]:
                raise ValueError("--bug transposed-weight needs a square wo, got %s" % (wo.shape,))
            wo = wo.T
        attn = (ctx @ wo.T).astype(np.float32)
        emit("layers.{L}.attention.wo", L, attn)
        h = x + attn
        emit("layers.{L}.residual", L, h)
        n2 = rms_norm(h, eps)
        emit("layers.{L}.ffn_norm.rms", L, n2)
        f = n2 * m.w(L, "ffn_norm.weight")
        emit("layers.{L}.ffn_norm", L, f)
        gate = (f @ m.w(L, "ffn_gate.weight").T).astype(np.float32)
        emit("layers.{L}.feed_forward.w1", L, gate)
        up = (f @ m.w(L, "ffn_up.weight").T).astype(np.float32)
        emit("layers.{L}.feed_forward.w3", L, up)
        a = act(gate) * up
        emit("layers.{L}.feed_forward.act", L, a)
        down = (a @ m.w(L, "ffn_down.weight").T).astype(np.float32)
        emit("layers.{L}.feed_forward.w2", L, down)
        x = h + down
        emit("layers.{L}", L, x)
    n = rms_norm(x, eps)
    emit("norm.rms", 0, n)
    y = n * m.out_norm
    emit("norm", 0, y)
    logits = (y @ m.output.T).astype(np.float32)
    emit("output", 0, logits)
    return logits


def parse_tokens(s):
    try:
        toks = [int(t) for t in s.replace(" ", "").split(",") if t != ""]
    except ValueError:
        raise SystemExit("numpy_llama: --tokens %r: want comma-separated integers" % s)
    if not toks:
        raise SystemExit("numpy_llama: --tokens is empty")
    return toks


def tokens_from(dump):
    p = os.path.join(dump, "manifest.json") if os.path.isdir(dump) else dump
    try:
        with open(p) as f:
            m = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit("numpy_llama: --tokens-from %s: %s" % (dump, e))
    toks = m.get("tokens")
    if not isinstance(toks, list) or not toks:
        raise SystemExit("numpy_llama: --tokens-from %s: the manifest has no tokens" % p)
    return [int(t) for t in toks], m.get("prompt", "") or ""


def main(argv=None):
    ap = argparse.ArgumentParser(prog="numpy_llama.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="planted bugs:\n" + "\n".join("  %-18s %s" % kv for kv in BUGS.items()))
    ap.add_argument("--model", required=True, help="GGUF file (arch llama; f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k tensors)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--tokens", help="comma-separated token ids, from position 0 (BOS included)")
    src.add_argument("--tokens-from", metavar="DUMP", help="take tokens (and prompt) from a dump's manifest.json")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--names", choices=["meta", "llamacpp"], default="meta",
                    help="meta: this engine's own names (default; numpy_llama.names maps them); "
                         "llamacpp: llama.cpp's names")
    ap.add_argument("--layout", choices=["natural", "ggml"],
                    help="natural: arrays as this engine holds them (roped q/k heads first, (heads, T, d)); "
                         "ggml: llama.cpp's element order ((T, heads, d)). Default: natural with meta names, "
                         "ggml with llamacpp names")
    ap.add_argument("--sparse", action="store_true", help="record only attn_norm-0, ffn_out-0 and result_output")
    ap.add_argument("--no-manifest", action="store_true", help="write a plain directory of .npy files")
    ap.add_argument("--force", action="store_true", help="replace an existing output directory")
    ap.add_argument("--bug", action="append", default=[], choices=sorted(BUGS), metavar="NAME",
                    help="plant a bug (repeatable): " + ", ".join(sorted(BUGS)))
    args = ap.parse_args(argv)

    prompt = ""
    if args.tokens_from:
        tokens, prompt = tokens_from(args.tokens_from)
    else:
        tokens = parse_tokens(args.tokens)
    try:
        m = Llama(GGUF(args.model))
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit("numpy_llama: %s" % e)
    if "no-bos" in args.bug and m.bos is not None and tokens[0] == m.bos:
        tokens = tokens[1:]
        if not tokens:
            raise SystemExit("numpy_llama: --bug no-bos left no tokens")
    bad = [t for t in tokens if t < 0 or t >= m.tok_embd.shape[0]]
    if bad:
        raise SystemExit("numpy_llama: token ids %s outside the vocabulary of %d" % (bad[:5], m.tok_embd.shape[0]))
    layout = args.layout or ("natural" if args.names == "meta" else "ggml")
    producer = "numpy_llama %s" % VERSION + ("" if not args.bug else " bug=" + ",".join(args.bug))
    try:
        rec = layerdiff_capture.Recorder(args.out, tokens=tokens, prompt=prompt, model=args.model,
                                         producer=producer, force=args.force, manifest=not args.no_manifest,
                                         architecture="llama", hparams=m.hparams())
    except FileExistsError as e:
        raise SystemExit("numpy_llama: %s" % e)
    with rec:
        forward(m, tokens, Sink(rec, args.names, layout, args.sparse), set(args.bug))
    print("numpy_llama: %d tokens, %d tensors -> %s" % (len(tokens), len(rec.nodes), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
