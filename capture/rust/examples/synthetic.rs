//! Writes a small synthetic dump with llama.cpp names, as a Rust engine
//! would: `cargo run --example synthetic -- OUT_DIR [--force] [--model FILE]`.
//! Element i of tensor number k (0-based, in the order below) is
//! `sin(0.01 * i + k)`; layerdiff's Go test checks shapes and values.

use layerdiff_capture::{Recorder, RunInfo};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.first() {
        Some(o) => o.clone(),
        None => {
            eprintln!("usage: synthetic OUT_DIR [--force] [--model FILE]");
            std::process::exit(2);
        }
    };
    let force = args.iter().any(|a| a == "--force");
    let model = args.iter().position(|a| a == "--model").and_then(|i| args.get(i + 1)).map(std::path::PathBuf::from);
    let (t, embd, heads, d, vocab) = (3usize, 8usize, 2usize, 4usize, 16usize);
    let info = RunInfo {
        tokens: vec![1, 5, 9],
        prompt: String::new(),
        model,
        producer: "synthetic-rust-engine 0.1".into(),
        architecture: "llama".into(),
    };
    // (name, op, numpy shape)
    let tensors: Vec<(&str, &str, Vec<usize>)> = vec![
        ("inp_embd", "GET_ROWS", vec![t, embd]),
        ("attn_norm-0", "MUL", vec![t, embd]),
        ("Qcur-0", "MUL_MAT", vec![t, heads * d]),
        ("Qcur-0", "ROPE", vec![t, heads, d]),
        ("kq-0", "MUL_MAT", vec![heads, t, t]),
        ("ffn_out-0", "MUL_MAT", vec![t, embd]),
        ("result_output", "MUL_MAT", vec![t, vocab]),
    ];
    let mut rec = Recorder::create(&out, info, force).unwrap_or_else(|e| {
        eprintln!("synthetic: {}", e);
        std::process::exit(1);
    });
    for (k, (name, op, shape)) in tensors.iter().enumerate() {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| (0.01 * i as f64 + k as f64).sin() as f32).collect();
        if let Err(e) = rec.record(name, op, shape, &data) {
            eprintln!("synthetic: {}", e);
            std::process::exit(1);
        }
    }
    if let Err(e) = rec.finish() {
        eprintln!("synthetic: {}", e);
        std::process::exit(1);
    }
    println!("synthetic: {} tensors -> {}", tensors.len(), out);
}
