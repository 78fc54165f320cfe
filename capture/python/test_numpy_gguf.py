"""Unit tests of examples/numpy_gguf.py: values of each tensor type, and
damaged files raise ValueError (never another exception)."""

import os
import random
import struct
import sys
import tempfile
import unittest

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "examples"))
import numpy_gguf  # noqa: E402


def gguf_string(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def build(tensors, kvs=(), alignment=32):
    """A GGUF v3 file: tensors = [(name, ne, type, raw bytes)]."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs) + 1)
    out += gguf_string("general.alignment") + struct.pack("<II", 4, alignment)
    for k, vt, payload in kvs:
        out += gguf_string(k) + struct.pack("<I", vt) + payload
    off = 0
    offsets = []
    for name, ne, typ, raw in tensors:
        offsets.append(off)
        off += (len(raw) + alignment - 1) // alignment * alignment
    for (name, ne, typ, raw), o in zip(tensors, offsets):
        out += gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", typ, o)
    out += bytes((-len(out)) % alignment)
    for name, ne, typ, raw in tensors:
        out += raw + bytes((-len(raw)) % alignment)
    return out


class GGUFTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.tmp.cleanup()

    def write(self, b):
        p = os.path.join(self.tmp.name, "m%d.gguf" % random.randrange(1 << 30))
        with open(p, "wb") as f:
            f.write(b)
        return p

    def sample(self):
        rng = np.random.default_rng(3)
        vals = rng.standard_normal(64).astype(np.float32)
        d = np.float16(0.05)
        q = rng.integers(-127, 128, 64).astype(np.int8)
        q8 = b"".join(np.float16(d).tobytes() + q[i * 32:(i + 1) * 32].tobytes() for i in range(2))
        q8_want = (np.float32(d) * q.astype(np.float32))
        nib = rng.integers(0, 16, 64).astype(np.uint8)  # element j of a block: nib[j]
        q4 = b""
        q41 = b""
        for i in range(2):
            blk = nib[i * 32:(i + 1) * 32]
            qs = (blk[:16] | (blk[16:] << 4)).astype(np.uint8).tobytes()
            q4 += np.float16(d).tobytes() + qs
            q41 += np.float16(d).tobytes() + np.float16(-0.5).tobytes() + qs
        q4_want = np.float32(d) * (nib.astype(np.float32) - 8)
        q41_want = np.float32(d) * nib.astype(np.float32) + np.float32(-0.5)
        bf = (vals.view(np.uint32) >> 16).astype("<u2")
        tensors = [
            ("f32", [32, 2], 0, vals.tobytes()),
            ("f16", [64], 1, vals.astype("<f2").tobytes()),
            ("bf16", [64], 30, bf.tobytes()),
            ("q8_0", [32, 2], 8, q8),
            ("q4_0", [64], 2, q4),
            ("q4_1", [64], 3, q41),
        ]
        want = {
            "f32": vals.reshape(2, 32), "f16": vals.astype(np.float16).astype(np.float32),
            "bf16": (bf.astype(np.uint32) << 16).view(np.float32),
            "q8_0": q8_want.reshape(2, 32), "q4_0": q4_want, "q4_1": q41_want,
        }
        kvs = [
            ("a.u8", 0, struct.pack("<B", 7)), ("a.i32", 5, struct.pack("<i", -3)),
            ("a.f32", 6, struct.pack("<f", 0.5)), ("a.bool", 7, b"\x01"),
            ("a.str", 8, gguf_string("héllo")), ("a.u64", 10, struct.pack("<Q", 1 << 40)),
            ("a.f64", 12, struct.pack("<d", 0.25)),
            ("a.arr", 9, struct.pack("<IQ", 5, 3) + struct.pack("<3i", 1, -2, 3)),
            ("a.strs", 9, struct.pack("<IQ", 8, 2) + gguf_string("x") + gguf_string("yz")),
        ]
        return build(tensors, kvs), want

    def test_values(self):
        b, want = self.sample()
        g = numpy_gguf.GGUF(self.write(b))
        self.assertEqual(g.version, 3)
        self.assertEqual(g.kv["a.u8"], 7)
        self.assertEqual(g.kv["a.i32"], -3)
        self.assertEqual(g.kv["a.f32"], 0.5)
        self.assertEqual(g.kv["a.bool"], True)
        self.assertEqual(g.kv["a.str"], "héllo")
        self.assertEqual(g.kv["a.u64"], 1 << 40)
        self.assertEqual(g.kv["a.f64"], 0.25)
        self.assertEqual(g.kv["a.arr"], [1, -2, 3])
        self.assertEqual(g.kv["a.strs"], ["x", "yz"])
        for name, w in want.items():
            got = g.tensor(name)
            self.assertEqual(got.dtype, np.float32, name)
            np.testing.assert_array_equal(got, w, err_msg=name)
        with self.assertRaises(KeyError):
            g.tensor("missing")

    def test_damaged(self):
        b, _ = self.sample()
        cases = [b[:n] for n in range(0, len(b), 7)]
        rng = random.Random(1)
        for _ in range(300):
            m = bytearray(b)
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(len(m) // 2)  # the header and tensor infos
                m[i] = rng.randrange(256)
            cases.append(bytes(m))
        cases.append(b"GGUF" + struct.pack("<IQQ", 3, 1 << 60, 0))
        cases.append(b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
        for c in cases:
            p = self.write(c)
            try:
                g = numpy_gguf.GGUF(p)
                for name in g.tensors:
                    g.tensor(name)
            except ValueError:
                pass
            os.unlink(p)


if __name__ == "__main__":
    unittest.main()
