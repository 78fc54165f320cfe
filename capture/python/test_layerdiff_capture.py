"""Unit tests of layerdiff_capture (python3 -m unittest, in capture/python)."""

import io
import json
import os
import tempfile
import unittest

import numpy as np

import layerdiff_capture as lc


def read_manifest(d):
    with open(os.path.join(d, "manifest.json")) as f:
        return json.load(f)


class RecorderTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "dump")

    def tearDown(self):
        self.tmp.cleanup()

    def test_natural_layout_ne_is_reversed_shape(self):
        cases = [
            ((3, 8), [8, 3]),
            ((4, 3, 3), [3, 3, 4]),
            ((5,), [5]),
            ((1, 3, 8), [8, 3]),        # leading batch 1 = trailing ne 1, trimmed
            ((2, 3, 1), [1, 3, 2]),     # inner 1 kept
            ((), [1]),
            ((1, 1, 2, 3, 4), [4, 3, 2]),
        ]
        with lc.Recorder(self.dir, tokens=[1, 2, 3], producer="t") as rec:
            for i, (shape, _) in enumerate(cases):
                rec.record("t%d" % i, np.arange(int(np.prod(shape)), dtype=np.float64).reshape(shape))
        m = read_manifest(self.dir)
        for i, (shape, ne) in enumerate(cases):
            n = m["nodes"][i]
            self.assertEqual(n["ne"], ne, shape)
            a = np.load(os.path.join(self.dir, n["file"]))
            self.assertEqual(a.dtype, np.dtype("<f4"))
            self.assertEqual(list(a.shape), ne[::-1])
            np.testing.assert_array_equal(a.ravel(), np.arange(a.size, dtype=np.float32))

    def test_ggml_layout_transposes(self):
        t, c = 3, 4
        natural = np.arange(t * c, dtype=np.float32).reshape(t, c)
        with lc.Recorder(self.dir, producer="t") as rec:
            rec.record("a", natural.T, layout="ggml")  # a[i0, i1]: ne = (c, t)
            rec.record("b", natural)
        m = read_manifest(self.dir)
        self.assertEqual(m["nodes"][0]["ne"], [c, t])
        a = np.load(os.path.join(self.dir, m["nodes"][0]["file"]))
        b = np.load(os.path.join(self.dir, m["nodes"][1]["file"]))
        np.testing.assert_array_equal(a, natural)
        np.testing.assert_array_equal(a, b)
        with self.assertRaises(ValueError):
            lc.Recorder(os.path.join(self.tmp.name, "x"), producer="t").record("a", natural, layout="hf")

    def test_too_many_dims(self):
        rec = lc.Recorder(self.dir, producer="t")
        with self.assertRaisesRegex(ValueError, "at most 4"):
            rec.record("big", np.zeros((2, 2, 2, 2, 2)))

    def test_refuses_overwrite_and_force_replaces(self):
        with lc.Recorder(self.dir, producer="t") as rec:
            rec.record("old", np.ones(3))
        with self.assertRaises(FileExistsError):
            lc.Recorder(self.dir, producer="t")
        with open(os.path.join(self.dir, "notes.txt"), "w") as f:
            f.write("kept")
        with lc.Recorder(self.dir, producer="t", force=True) as rec:
            rec.record("new", np.zeros(2))
        names = sorted(os.listdir(self.dir))
        self.assertEqual(names, ["0000-new.npy", "manifest.json", "notes.txt"])
        f = os.path.join(self.tmp.name, "file")
        open(f, "w").close()
        with self.assertRaises(FileExistsError):
            lc.Recorder(f, producer="t", force=True)
        os.makedirs(os.path.join(self.tmp.name, "empty"))
        lc.Recorder(os.path.join(self.tmp.name, "empty"), producer="t")  # empty dir: fine

    def test_manifest_written_last(self):
        rec = lc.Recorder(self.dir, producer="t")
        rec.record("a", np.ones(2))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "manifest.json")))
        rec.close()
        self.assertTrue(os.path.exists(os.path.join(self.dir, "manifest.json")))
        self.assertEqual([e for e in os.listdir(self.dir) if e.startswith(".tmp-")], [])
        with self.assertRaises(ValueError):
            rec.record("b", np.ones(2))
        d2 = os.path.join(self.tmp.name, "failed")
        with self.assertRaises(RuntimeError):
            with lc.Recorder(d2, producer="t") as rec:
                rec.record("a", np.ones(2))
                raise RuntimeError("engine failed")
        self.assertFalse(os.path.exists(os.path.join(d2, "manifest.json")))

    def test_keys_and_fields(self):
        model = os.path.join(self.tmp.name, "m.gguf")
        with open(model, "wb") as f:
            f.write(b"GGUF" + bytes(12))
        with lc.Recorder(self.dir, tokens=np.array([1, 5, 9]), prompt="hi", model=model, producer="eng 0.2",
                         architecture="llama", hparams={"llama.block_count": 2},
                         extra={"x_eng_seed": 7}) as rec:
            self.assertEqual(rec.record("Qcur-0", np.ones((3, 4)), op="MUL_MAT"), "Qcur-0")
            self.assertEqual(rec.record("Qcur-0", np.ones((3, 2, 2)), op="ROPE"), "Qcur-0#2")
            self.assertEqual(rec.record("Qcur-0#2", np.ones(1)), "Qcur-0#2@2")
            self.assertEqual(rec.record("a/b c", [2.5], src=["x"]), "a/b c")
            rec.record("tensor", FakeTensor(np.ones((2, 3), dtype=np.float16), []))
        m = read_manifest(self.dir)
        self.assertEqual(m["format"], "layerdiff-dump")
        self.assertEqual(m["format_version"], 1)
        self.assertEqual(m["producer"], "eng 0.2 (layerdiff_capture %s)" % lc.KIT_VERSION)
        self.assertEqual(m["tokens"], [1, 5, 9])
        self.assertEqual(m["prompt"], "hi")
        self.assertEqual(m["model"]["path"], model)
        self.assertEqual(m["model"]["size"], 16)
        self.assertEqual(len(m["model"]["sha256"]), 64)
        self.assertEqual(m["model"]["hparams"], {"llama.block_count": 2})
        self.assertEqual(m["x_eng_seed"], 7)
        self.assertEqual([n["index"] for n in m["nodes"]], [0, 1, 2, 3, 4])
        self.assertEqual(m["nodes"][4]["ne"], [3, 2])
        self.assertEqual([n["file"] for n in m["nodes"]],
                         ["0000-Qcur-0.npy", "0001-Qcur-0_2.npy", "0002-Qcur-0_2_2.npy", "0003-a_b_c.npy",
                          "0004-tensor.npy"])
        self.assertEqual(m["nodes"][1]["op"], "ROPE")
        self.assertEqual(m["nodes"][3]["src"], ["x"])
        with self.assertRaises(ValueError):
            lc.Recorder(os.path.join(self.tmp.name, "y"), producer="t", extra={"seed": 1})

    def test_stats(self):
        vals = np.array([1e8, 1.0, -1e8, 0.5, np.inf, np.nan, -3], dtype=np.float32)
        with lc.Recorder(self.dir, producer="t") as rec:
            rec.record("plain", np.array([1e8, 1.0, -1e8, 0.5], dtype=np.float32))
            rec.record("odd", vals)
            rec.record("allnan", np.full(3, np.nan))
            rec.record("empty", np.zeros((0, 4)))
        with open(os.path.join(self.dir, "manifest.json")) as f:
            text = f.read()
        self.assertNotIn("NaN,", text.replace('"NaN"', ""))  # strict JSON
        m = json.loads(text)
        s = m["nodes"][0]["stats"]
        # float32 running sum: 1e8 + 1 = 1e8, - 1e8 = 0, + 0.5
        self.assertEqual(s["sum"], 0.5)
        self.assertEqual((s["min"], s["max"], s["nan"], s["inf"]), (-1e8, 1e8, 0, 0))
        s = m["nodes"][1]["stats"]
        self.assertEqual((s["sum"], s["min"], s["max"], s["nan"], s["inf"]), ("NaN", -1e8, "Infinity", 1, 1))
        s = m["nodes"][2]["stats"]
        self.assertEqual((s["sum"], s["min"], s["max"], s["nan"]), ("NaN", 0.0, 0.0, 3))
        self.assertEqual(m["nodes"][3]["ne"], [4, 0])
        self.assertEqual(m["nodes"][3]["stats"]["sum"], 0.0)

    def test_npy_header_matches_numpy(self):
        for shape in [(5,), (3, 4), (2, 3, 4), (1000, 32000), (0, 4)]:
            got = lc._npy_bytes_header(shape)
            self.assertEqual(len(got) % 64, 0, shape)
            self.assertTrue(got.endswith(b"\n"))
            buf = io.BytesIO(got + bytes(4 * int(np.prod(shape))))
            a = np.load(buf)
            self.assertEqual(a.shape, shape)
            self.assertEqual(a.dtype, np.dtype("<f4"))

    def test_no_manifest(self):
        with lc.Recorder(self.dir, producer="t", manifest=False) as rec:
            rec.record("layers.0.attention.wq", np.ones((3, 4)))
            rec.record("Qcur-0", np.ones((3, 4)))
            rec.record("Qcur-0", np.ones((3, 2, 2)))
            rec.record("0001-x", np.ones(1))
        self.assertEqual(sorted(os.listdir(self.dir)),
                         ["Qcur-0#2.npy", "Qcur-0.npy", "layers.0.attention.wq.npy", "t0001-x.npy"])
        d2 = os.path.join(self.tmp.name, "clash")
        rec = lc.Recorder(d2, producer="t", manifest=False)
        rec.record("a b", np.ones(1))
        with self.assertRaisesRegex(ValueError, "already written"):
            rec.record("a_b", np.ones(1))


class FakeTensor:
    """Enough of torch.Tensor for TorchRecorder: detach/float/cpu/numpy."""

    def __init__(self, a, log):
        self.a, self.log = np.asarray(a), log

    def detach(self):
        self.log.append("detach")
        return self

    def float(self):
        return FakeTensor(self.a.astype(np.float32), self.log)

    def cpu(self):
        return self

    def numpy(self):
        return self.a


class Handle:
    def __init__(self, hooks, fn):
        self.hooks, self.fn = hooks, fn

    def remove(self):
        self.hooks.remove(self.fn)


class FakeModule:
    def __init__(self, fn):
        self.fn, self.hooks = fn, []

    def register_forward_hook(self, fn):
        self.hooks.append(fn)
        return Handle(self.hooks, fn)

    def __call__(self, x):
        out = self.fn(x)
        for h in list(self.hooks):
            h(self, (x,), out)
        return out


class Linear(FakeModule):
    pass


class FakeModel(FakeModule):
    """A root with three children: a "Linear" returning a tensor, an
    attention returning (tensor, weights), a module returning a dict."""

    def __init__(self, log):
        self.log = log
        self.proj = Linear(lambda x: FakeTensor(x.a * 2, log))
        self.attn = FakeModule(lambda x: (FakeTensor(x.a + 1, log), None))
        self.cache = FakeModule(lambda x: {"k": 1})
        super().__init__(self.forward)

    def named_modules(self):
        return [("", self), ("proj", self.proj), ("layers.0.attn", self.attn), ("cache", self.cache)]

    def forward(self, x):
        h = self.proj(x)
        h = self.attn(h)[0]
        self.cache(h)
        h = self.attn(h)[0]
        return h


class TorchRecorderTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = os.path.join(self.tmp.name, "dump")

    def tearDown(self):
        self.tmp.cleanup()

    def test_hooks_record_outputs(self):
        log = []
        model = FakeModel(log)
        x = FakeTensor(np.arange(6, dtype=np.float64).reshape(1, 2, 3), log)
        rec = lc.Recorder(self.dir, producer="fake")
        with lc.TorchRecorder(rec, model) as tr:
            self.assertEqual(len(tr.handles), 3)  # root left out
            model(x)
        rec.close()
        self.assertEqual(model.proj.hooks + model.attn.hooks + model.cache.hooks, [])
        m = read_manifest(self.dir)
        self.assertEqual([n["key"] for n in m["nodes"]], ["proj", "layers.0.attn", "layers.0.attn#2"])
        self.assertEqual([n["op"] for n in m["nodes"]], ["MUL_MAT", "", ""])
        self.assertEqual(m["nodes"][0]["ne"], [3, 2])  # batch 1 squeezed
        want = np.arange(6, dtype=np.float32).reshape(2, 3) * 2
        for i, w in enumerate([want, want + 1, want + 2]):
            np.testing.assert_array_equal(np.load(os.path.join(self.dir, m["nodes"][i]["file"])), w)
        self.assertIn("detach", log)
        model(x)  # hooks removed: nothing more is recorded
        self.assertEqual(len(rec.nodes), 3)

    def test_include(self):
        log = []
        model = FakeModel(log)
        x = FakeTensor(np.ones((2, 3)), log)
        for include in (["proj"], lambda n: n == "proj"):
            d = tempfile.mkdtemp(dir=self.tmp.name)
            rec = lc.Recorder(d, producer="fake", force=True)
            with lc.TorchRecorder(rec, model, include=include, squeeze_batch=False):
                model(x)
            self.assertEqual([n["key"] for n in rec.nodes], ["proj"])
            self.assertEqual(rec.nodes[0]["ne"], [3, 2])


if __name__ == "__main__":
    unittest.main()
