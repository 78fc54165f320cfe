//! Write layerdiff dumps from a Rust inference engine, without dependencies.
//!
//! A dump is a directory of `NNNN-key.npy` files (float32, C order) and a
//! `manifest.json` written last, atomically; `docs/dump-format.md` in the
//! layerdiff repository is the contract. Record each activation under your
//! engine's name, then `layerdiff compare REF DUMP` finds where it stops
//! agreeing with llama.cpp.
//!
//! ```no_run
//! use layerdiff_capture::{Recorder, RunInfo};
//! let info = RunInfo { tokens: vec![1, 15043, 3186], producer: "my-engine 0.1".into(), ..RunInfo::default() };
//! let mut rec = Recorder::create("out/mine", info, false)?;
//! let hidden = vec![0.0f32; 3 * 64]; // (T, n_embd), row-major
//! rec.record("inp_embd", "GET_ROWS", &[3, 64], &hidden)?;
//! rec.finish()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Shapes: [`Recorder::record`] takes the numpy (row-major) shape, tokens
//! first, as most engines hold activations: `(T, n_embd)`. The manifest's
//! ggml shape `ne` is that shape reversed (`[n_embd, T]`), as llama.cpp's.
//! [`Recorder::record_ggml`] takes `ne` directly, for buffers laid out the
//! ggml way (`ne[0]` varies fastest). The bytes written are the same.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub mod sha256;

/// Version of this capture kit, written in the manifest's `producer`.
pub const KIT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The manifest's `format` field.
pub const FORMAT_NAME: &str = "layerdiff-dump";
/// The manifest version written.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name inside a dump directory.
pub const MANIFEST: &str = "manifest.json";

/// What the engine knows about the run; written as the manifest's run fields.
#[derive(Clone, Debug, Default)]
pub struct RunInfo {
    /// Token ids evaluated, from position 0 (BOS included if it was added).
    pub tokens: Vec<i64>,
    /// The text that was tokenized ("" when ids were given).
    pub prompt: String,
    /// The model file; its size and SHA-256 are recorded when [`Recorder::finish`]
    /// writes the manifest.
    pub model: Option<PathBuf>,
    /// The engine's name and version, e.g. "my-engine 0.1".
    pub producer: String,
    /// `general.architecture` of the model, e.g. "llama" ("" unknown).
    pub architecture: String,
}

/// Statistics of a node's values, as the manifest stores them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Sum accumulated in an f32 in order, as llama.cpp's eval callback does.
    pub sum: f32,
    /// Smallest non-NaN value (0 when there is none).
    pub min: f32,
    /// Largest non-NaN value (0 when there is none).
    pub max: f32,
    /// Number of NaN values.
    pub nan: u64,
    /// Number of infinite values.
    pub inf: u64,
}

/// Computes the manifest statistics of values in flat order.
pub fn stats(data: &[f32]) -> Stats {
    let mut s = Stats { sum: 0.0, min: f32::INFINITY, max: f32::NEG_INFINITY, nan: 0, inf: 0 };
    for &v in data {
        s.sum += v;
        if v.is_nan() {
            s.nan += 1;
            continue;
        }
        if v.is_infinite() {
            s.inf += 1;
        }
        s.min = s.min.min(v);
        s.max = s.max.max(v);
    }
    if s.nan as usize == data.len() {
        s.min = 0.0;
        s.max = 0.0;
    }
    s
}

struct Node {
    key: String,
    name: String,
    op: String,
    ne: Vec<usize>,
    file: String,
    stats: Stats,
}

/// Records named activations into a layerdiff dump directory.
pub struct Recorder {
    dir: PathBuf,
    info: RunInfo,
    nodes: Vec<Node>,
    count: HashMap<String, usize>,
    used: HashSet<String>,
}

impl Recorder {
    /// Creates the dump directory (or uses an empty existing one). An
    /// existing non-empty directory is refused (`AlreadyExists`) unless
    /// `force`, which first removes its manifest.json, then its .npy files.
    pub fn create(dir: impl AsRef<Path>, info: RunInfo, force: bool) -> io::Result<Recorder> {
        let dir = dir.as_ref().to_path_buf();
        match fs::metadata(&dir) {
            Ok(m) if !m.is_dir() => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is a file, not a dump directory", dir.display()),
                ))
            }
            Ok(_) => {
                let entries: Vec<_> = fs::read_dir(&dir)?.collect::<io::Result<_>>()?;
                if !entries.is_empty() {
                    if !force {
                        return Err(io::Error::new(
                            io::ErrorKind::AlreadyExists,
                            format!("{} exists and is not empty; use force to replace it", dir.display()),
                        ));
                    }
                    let m = dir.join(MANIFEST);
                    if m.exists() {
                        fs::remove_file(&m)?;
                    }
                    for e in entries {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if e.file_type()?.is_file() && (name.ends_with(".npy") || name.starts_with(".tmp-")) {
                            fs::remove_file(e.path())?;
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(&dir)?,
            Err(e) => return Err(e),
        }
        Ok(Recorder { dir, info, nodes: Vec::new(), count: HashMap::new(), used: HashSet::new() })
    }

    /// The dump directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `name` for its first node, `name#N` for the N-th; `@I` appended when
    /// that key is taken (layerdiff's KeyMaker).
    fn next_key(&mut self, name: &str) -> String {
        let c = self.count.entry(name.to_string()).or_insert(0);
        *c += 1;
        let mut key = if *c == 1 { name.to_string() } else { format!("{}#{}", name, c) };
        if self.used.contains(&key) {
            key = format!("{}@{}", key, self.nodes.len());
        }
        self.used.insert(key.clone());
        key
    }

    /// Records one activation of numpy (row-major) `shape`, tokens first,
    /// e.g. `[T, n_embd]` or `[n_head, T, T]`; returns its key. `op` is the
    /// ggml op name ("MUL_MAT", "ROPE"...) or "".
    pub fn record(&mut self, name: &str, op: &str, shape: &[usize], data: &[f32]) -> io::Result<String> {
        let ne: Vec<usize> = shape.iter().rev().copied().collect();
        self.record_ggml(name, op, &ne, data)
    }

    /// Records one activation of ggml shape `ne` (`ne[0]` varies fastest in
    /// `data`); returns its key.
    pub fn record_ggml(&mut self, name: &str, op: &str, ne: &[usize], data: &[f32]) -> io::Result<String> {
        if name.is_empty() {
            return Err(invalid("record: empty name".to_string()));
        }
        let mut ne: Vec<usize> = ne.to_vec();
        while ne.len() > 1 && ne[ne.len() - 1] == 1 {
            ne.pop();
        }
        if ne.is_empty() {
            ne.push(1);
        }
        if ne.len() > 4 {
            return Err(invalid(format!("record {:?}: ne {:?} has more than 4 dimensions", name, ne)));
        }
        let numel = ne.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel != Some(data.len()) {
            return Err(invalid(format!("record {:?}: ne {:?} does not hold the {} values given", name, ne, data.len())));
        }
        let index = self.nodes.len();
        let key = self.next_key(name);
        let file = node_file_name(index, &key);
        let shape: Vec<usize> = ne.iter().rev().copied().collect();
        write_npy_f32(&self.dir.join(&file), &shape, data)?;
        self.nodes.push(Node { key: key.clone(), name: name.to_string(), op: op.to_string(), ne, file, stats: stats(data) });
        Ok(key)
    }

    /// The manifest JSON that [`Recorder::finish`] writes (the model's
    /// SHA-256 is read then; an unreadable model file leaves it "").
    pub fn manifest_json(&self) -> String {
        let producer = format!("{} (layerdiff-capture {})", self.info.producer, KIT_VERSION);
        let mut s = String::new();
        let _ = write!(s, "{{\n \"format\": {},\n \"format_version\": {},\n", json_str(FORMAT_NAME), FORMAT_VERSION);
        let _ = write!(s, " \"layerdiff_version\": {},\n \"producer\": {},\n", json_str(&producer), json_str(&producer));
        s.push_str(" \"llamacpp_commit\": \"\",\n \"llamacpp_source\": \"\",\n \"system_info\": \"\",\n");
        let (path, size, sum) = match &self.info.model {
            Some(p) => (
                p.to_string_lossy().into_owned(),
                fs::metadata(p).map(|m| m.len()).unwrap_or(0),
                fs::File::open(p).and_then(sha256::hex_of).unwrap_or_default(),
            ),
            None => (String::new(), 0, String::new()),
        };
        let _ = write!(
            s,
            " \"model\": {{\"path\": {}, \"size\": {}, \"sha256\": {}, \"architecture\": {}, \"hparams\": {{}}}},\n",
            json_str(&path),
            size,
            json_str(&sum),
            json_str(&self.info.architecture)
        );
        let toks: Vec<String> = self.info.tokens.iter().map(|t| t.to_string()).collect();
        let _ = write!(s, " \"prompt\": {},\n \"tokens\": [{}],\n \"output_all\": true,\n \"nodes\": [", json_str(&self.info.prompt), toks.join(", "));
        for (i, n) in self.nodes.iter().enumerate() {
            let ne: Vec<String> = n.ne.iter().map(|d| d.to_string()).collect();
            let _ = write!(
                s,
                "{}\n  {{\"index\": {}, \"key\": {}, \"name\": {}, \"op\": {}, \"src\": [], \"type\": \"f32\", \"ne\": [{}], \"file\": {}, \"is_view\": false, \"stats\": {{\"sum\": {}, \"min\": {}, \"max\": {}, \"nan\": {}, \"inf\": {}}}}}",
                if i == 0 { "" } else { "," },
                i,
                json_str(&n.key),
                json_str(&n.name),
                json_str(&n.op),
                ne.join(", "),
                json_str(&n.file),
                json_f32(n.stats.sum),
                json_f32(n.stats.min),
                json_f32(n.stats.max),
                n.stats.nan,
                n.stats.inf
            );
        }
        s.push_str("\n ]\n}\n");
        s
    }

    /// Writes manifest.json, atomically, after every .npy file: the dump
    /// is complete. A recorder dropped without `finish` leaves no manifest.
    pub fn finish(self) -> io::Result<()> {
        let b = self.manifest_json();
        write_atomic(&self.dir.join(MANIFEST), b.as_bytes())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The file name layerdiff's dumper gives node `index` with `key`: the
/// zero-padded index, the key with characters outside `[A-Za-z0-9._-]`
/// replaced by '_' (at most 96 of them), and ".npy".
pub fn node_file_name(index: usize, key: &str) -> String {
    let mut s = format!("{:04}-", index);
    for c in key.chars().take(96) {
        s.push(if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' { c } else { '_' });
    }
    s.push_str(".npy");
    s
}

/// A JSON string literal.
fn json_str(v: &str) -> String {
    let mut s = String::with_capacity(v.len() + 2);
    s.push('"');
    for c in v.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

/// An f32 as JSON: a number, or "NaN" / "Infinity" / "-Infinity".
fn json_f32(v: f32) -> String {
    if v.is_nan() {
        "\"NaN\"".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "\"Infinity\"" } else { "\"-Infinity\"" }.to_string()
    } else {
        format!("{}", v as f64)
    }
}

/// The .npy 1.0 header of a C-order little-endian float32 array of numpy
/// `shape`, padded with spaces and a newline to a multiple of 64 bytes as
/// numpy pads it.
pub fn npy_header(shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        0 => "()".to_string(),
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut d = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", dims);
    let total = 10 + d.len() + 1;
    let pad = (64 - total % 64) % 64;
    d.extend(std::iter::repeat(' ').take(pad));
    d.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(d.len() as u16).to_le_bytes());
    out.extend_from_slice(d.as_bytes());
    out
}

/// A parsed .npy header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// dtype, e.g. "<f4".
    pub descr: String,
    /// Fortran (column-major) order.
    pub fortran_order: bool,
    /// numpy shape.
    pub shape: Vec<usize>,
    /// Offset of the data: the header's total length.
    pub data_offset: usize,
}

/// Parses the header of .npy bytes (version 1.0, 2.0 or 3.0), enough to
/// read back what [`write_npy_f32`] writes.
pub fn parse_npy_header(b: &[u8]) -> io::Result<NpyHeader> {
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, format!("npy: {}", m));
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file (magic)"));
    }
    let (hlen, start): (usize, usize) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        _ => return Err(bad("unknown version")),
    };
    let end = start.checked_add(hlen).filter(|&e| e <= b.len()).ok_or_else(|| bad("header longer than the file"))?;
    let h = std::str::from_utf8(&b[start..end]).map_err(|_| bad("header is not text"))?;
    fn field<'a>(h: &'a str, k: &str) -> io::Result<&'a str> {
        let i = h
            .find(&format!("'{}':", k))
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("npy: no {} in header", k)))?;
        Ok(h[i + k.len() + 3..].trim_start())
    }
    let d = field(h, "descr")?;
    let descr = d.strip_prefix('\'').and_then(|r| r.split('\'').next()).ok_or_else(|| bad("descr"))?.to_string();
    let fortran_order = field(h, "fortran_order")?.starts_with("True");
    let s = field(h, "shape")?;
    let s = s.strip_prefix('(').and_then(|r| r.split(')').next()).ok_or_else(|| bad("shape"))?;
    let mut shape = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        shape.push(part.parse::<usize>().map_err(|_| bad("shape dimension"))?);
    }
    Ok(NpyHeader { descr, fortran_order, shape, data_offset: end })
}

/// Writes `data` as a float32 .npy file of numpy `shape`, atomically.
pub fn write_npy_f32(path: &Path, shape: &[usize], data: &[f32]) -> io::Result<()> {
    let mut b = npy_header(shape);
    b.reserve(4 * data.len());
    for v in data {
        b.extend_from_slice(&v.to_le_bytes());
    }
    write_atomic(path, &b)
}

/// Writes bytes to path through a temporary file in the same directory:
/// write, sync, rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let base = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".tmp-{}-{}.part", std::process::id(), base));
    let res = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests;
