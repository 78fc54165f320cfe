"""A minimal GGUF (v2, v3) reader in numpy, written for numpy_llama.py.

    g = GGUF("model.gguf")
    g.kv["llama.embedding_length"]      # metadata, any GGUF value type
    w = g.tensor("blk.0.attn_q.weight")  # float32 numpy, shape = reversed ne

Tensor types F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K are dequantized to float32;
others raise ValueError. Every count, length and offset is checked against
the file before it is used; errors name the file and the byte offset.
"""

import struct

import numpy as np

# GGUF metadata value types.
_SCALARS = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4),
    6: ("<f", 4), 7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}
_NP_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "<u1",
               10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9

# ggml types: name, elements per block, bytes per block.
TYPES = {
    0: ("f32", 1, 4), 1: ("f16", 1, 2), 2: ("q4_0", 32, 18), 3: ("q4_1", 32, 20),
    6: ("q5_0", 32, 22), 7: ("q5_1", 32, 24), 8: ("q8_0", 32, 34), 9: ("q8_1", 32, 36),
    10: ("q2_k", 256, 84), 11: ("q3_k", 256, 110), 12: ("q4_k", 256, 144),
    13: ("q5_k", 256, 176), 14: ("q6_k", 256, 210), 15: ("q8_k", 256, 292),
    24: ("i8", 1, 1), 25: ("i16", 1, 2), 26: ("i32", 1, 4), 27: ("i64", 1, 8),
    28: ("f64", 1, 8), 30: ("bf16", 1, 2),
}

MAX_DIMS = 4


class TensorInfo:
    """One tensor's entry: name, ne (ggml order), ggml type id, absolute
    data offset and size in bytes."""

    def __init__(self, name, ne, typ, offset, nbytes):
        self.name, self.ne, self.type, self.offset, self.nbytes = name, ne, typ, offset, nbytes

    @property
    def type_name(self):
        return TYPES.get(self.type, ("type%d" % self.type,))[0]


class GGUF:
    """A parsed GGUF file: version, kv (dict of metadata), tensors (dict of
    TensorInfo by name, in file order), alignment, data_offset."""

    def __init__(self, path):
        self.path = path
        self.buf = np.memmap(path, dtype=np.uint8, mode="r")
        self.mv = memoryview(self.buf)
        self.pos = 0
        self._parse()

    # -- primitive reads -----------------------------------------------------

    def _fail(self, msg, at=None):
        raise ValueError("%s: offset %d: %s" % (self.path, self.pos if at is None else at, msg))

    def _take(self, n, what):
        if n < 0 or self.pos + n > len(self.buf):
            self._fail("%s: need %d bytes, %d left" % (what, n, len(self.buf) - self.pos))
        b = self.mv[self.pos:self.pos + n]
        self.pos += n
        return b

    def _scalar(self, vt, what):
        fmt, n = _SCALARS[vt]
        return struct.unpack(fmt, self._take(n, what))[0]

    def _u32(self, what):
        return self._scalar(4, what)

    def _u64(self, what):
        return self._scalar(10, what)

    def _string(self, what):
        n = self._u64(what + " length")
        if n > len(self.buf) - self.pos:
            self._fail("%s: length %d exceeds the file" % (what, n))
        return bytes(self._take(n, what)).decode("utf-8", errors="replace")

    def _value(self, vt, what, depth=0):
        if vt in _SCALARS:
            return self._scalar(vt, what)
        if vt == _STRING:
            return self._string(what)
        if vt == _ARRAY:
            if depth > 8:
                self._fail("%s: arrays nested too deep" % what)
            et = self._u32(what + " element type")
            n = self._u64(what + " element count")
            if n > len(self.buf) - self.pos:  # every element takes at least a byte
                self._fail("%s: %d elements exceed the file" % (what, n))
            if et in _NP_SCALARS:
                size = np.dtype(_NP_SCALARS[et]).itemsize
                b = self._take(n * size, what)
                a = np.frombuffer(b, dtype=_NP_SCALARS[et])
                return a.astype(bool).tolist() if et == 7 else a.tolist()
            if et in (_STRING, _ARRAY):
                return [self._value(et, "%s[%d]" % (what, i), depth + 1) for i in range(n)]
            self._fail("%s: unknown array element type %d" % (what, et))
        self._fail("%s: unknown value type %d" % (what, vt))

    # -- structure ----------------------------------------------------------

    def _parse(self):
        if bytes(self._take(4, "magic")) != b"GGUF":
            self._fail("not a GGUF file (magic)", 0)
        self.version = self._u32("version")
        if self.version not in (2, 3):
            self._fail("GGUF version %d not supported (2 or 3)" % self.version, 4)
        n_tensors = self._u64("tensor count")
        n_kv = self._u64("metadata count")
        if n_tensors > len(self.buf) // 8 or n_kv > len(self.buf) // 8:
            self._fail("%d tensors / %d metadata entries cannot fit in the file" % (n_tensors, n_kv))
        self.kv = {}
        for i in range(n_kv):
            key = self._string("metadata %d key" % i)
            vt = self._u32("metadata %r type" % key)
            self.kv[key] = self._value(vt, "metadata %r" % key)
        self.alignment = self.kv.get("general.alignment", 32)
        if not isinstance(self.alignment, int) or self.alignment <= 0 or self.alignment & (self.alignment - 1):
            self._fail("general.alignment %r is not a positive power of two" % (self.alignment,))
        infos = []
        for i in range(n_tensors):
            name = self._string("tensor %d name" % i)
            nd = self._u32("tensor %r dimensions" % name)
            if nd < 1 or nd > MAX_DIMS:
                self._fail("tensor %r: %d dimensions (1 to %d)" % (name, nd, MAX_DIMS))
            ne = [self._u64("tensor %r ne[%d]" % (name, d)) for d in range(nd)]
            typ = self._u32("tensor %r type" % name)
            off = self._u64("tensor %r offset" % name)
            infos.append((name, ne, typ, off))
        a = self.alignment
        self.data_offset = (self.pos + a - 1) // a * a
        self.tensors = {}
        for name, ne, typ, off in infos:
            if typ not in TYPES:
                raise ValueError("%s: tensor %r: unknown ggml type %d" % (self.path, name, typ))
            _, blk, bsz = TYPES[typ]
            n = 1
            for d in ne:
                n *= d
            if ne[0] % blk:
                raise ValueError("%s: tensor %r: ne[0] %d not a multiple of the %s block %d"
                                 % (self.path, name, ne[0], TYPES[typ][0], blk))
            nbytes = n // blk * bsz
            start = self.data_offset + off
            if off % a or start + nbytes > len(self.buf):
                raise ValueError("%s: tensor %r: data at %d (+%d bytes) misaligned or beyond the end (%d)"
                                 % (self.path, name, start, nbytes, len(self.buf)))
            if name in self.tensors:
                raise ValueError("%s: tensor %r listed twice" % (self.path, name))
            self.tensors[name] = TensorInfo(name, ne, typ, start, nbytes)

    # -- data ----------------------------------------------------------------

    def tensor(self, name):
        """The tensor's values as float32, numpy shape = ne reversed."""
        if name not in self.tensors:
            raise KeyError("%s: no tensor %r" % (self.path, name))
        t = self.tensors[name]
        raw = self.buf[t.offset:t.offset + t.nbytes]
        flat = dequantize(raw, t.type, "%s: tensor %r" % (self.path, name))
        return flat.reshape(tuple(reversed(t.ne)))

    def get(self, key, default=None):
        """Metadata value of key, or default."""
        return self.kv.get(key, default)


def dequantize(raw, typ, what="tensor"):
    """Float32 values of raw bytes (uint8 array) of ggml type typ."""
    raw = np.ascontiguousarray(raw)
    if typ == 0:
        return raw.view("<f4").astype(np.float32)
    if typ == 1:
        return raw.view("<f2").astype(np.float32)
    if typ == 30:
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if typ == 8:
        b = raw.view(np.dtype([("d", "<f2"), ("q", "i1", 32)]))
        return (b["d"].astype(np.float32)[:, None] * b["q"].astype(np.float32)).reshape(-1)
    if typ in (2, 3):
        if typ == 2:
            b = raw.view(np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
            m = 0.0
        else:
            b = raw.view(np.dtype([("d", "<f2"), ("m", "<f2"), ("qs", "u1", 16)]))
            m = b["m"].astype(np.float32)[:, None]
        qs = b["qs"]
        q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)
        if typ == 2:
            q -= 8
        return (b["d"].astype(np.float32)[:, None] * q + m).reshape(-1).astype(np.float32)
    if typ == 14:
        return _dequant_q6_k(raw)
    if typ in (12, 13):
        return _dequant_q45_k(raw, typ == 13)
    raise ValueError("%s: ggml type %s is not supported by this reader (f32, f16, bf16, q8_0, q4_0, q4_1, q4_k, q5_k, q6_k)"
                     % (what, TYPES.get(typ, ("%d" % typ,))[0]))


# Q6_K: per 256 values, for each half h of 128: y[32*j + l] uses the 4 low
# bits of ql[h][l + 32*(j % 2)] (high nibble when j >= 2), 2 bits of
# qh[h][l] at shift 2*j, and the int8 scale sc[h][2*j + l // 16].
_Q6K_SCALE = np.array([[2 * j + l // 16 for l in range(32)] for j in range(4)])


def _dequant_q6_k(raw):
    b = raw.view(np.dtype([("ql", "u1", 128), ("qh", "u1", 64), ("sc", "i1", 16), ("d", "<f2")]))
    nb = b.shape[0]
    ql = b["ql"].reshape(nb, 2, 64)
    qh = b["qh"].reshape(nb, 2, 32)
    sc = b["sc"].reshape(nb, 2, 8).astype(np.float32)
    lo = [ql[:, :, :32] & 0xF, ql[:, :, 32:] & 0xF, ql[:, :, :32] >> 4, ql[:, :, 32:] >> 4]
    q = np.stack([lo[j] | (((qh >> (2 * j)) & 3) << 4) for j in range(4)], axis=2).astype(np.float32) - 32
    scales = sc[:, :, _Q6K_SCALE]                                   # (nb, 2, 4, 32)
    d = b["d"].astype(np.float32)[:, None, None, None]
    return (d * scales * q).reshape(-1).astype(np.float32)


def _k_scales(s):
    """The 8 six-bit scales and mins of a Q4_K/Q5_K block's 12 scale bytes
    (ggml's get_scale_min_k4)."""
    s = s.astype(np.uint8)
    sc = np.empty(s.shape[:-1] + (8,), np.uint8)
    mn = np.empty_like(sc)
    sc[:, :4] = s[:, 0:4] & 63
    mn[:, :4] = s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 0xF) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc.astype(np.float32), mn.astype(np.float32)


def _dequant_q45_k(raw, five):
    """Q4_K / Q5_K: per 256 values, 4 chunks of 64, each two sub-blocks of
    32 (low nibbles, then high nibbles of the same 32 bytes), sub-block s
    scaled by d * sc[s] and offset by -dmin * m[s]; Q5_K adds a fifth bit
    from qh[l], bit 2 * chunk + half."""
    fields = [("d", "<f2"), ("dmin", "<f2"), ("sc", "u1", 12)]
    if five:
        fields.append(("qh", "u1", 32))
    fields.append(("qs", "u1", 128))
    b = raw.view(np.dtype(fields))
    nb = b.shape[0]
    qs = b["qs"].reshape(nb, 4, 32)
    q = np.stack([qs & 0xF, qs >> 4], axis=2).astype(np.float32)       # (nb, chunk, half, 32)
    if five:
        qh = b["qh"]
        bits = np.stack([np.stack([(qh >> (2 * c + h)) & 1 for h in range(2)], axis=1) for c in range(4)], axis=1)
        q += 16 * bits.astype(np.float32)
    sc, mn = _k_scales(b["sc"])
    d = b["d"].astype(np.float32)[:, None]
    dmin = b["dmin"].astype(np.float32)[:, None]
    scale = (d * sc).reshape(nb, 4, 2, 1)
    off = (dmin * mn).reshape(nb, 4, 2, 1)
    return (scale * q - off).reshape(-1).astype(np.float32)
