use super::*;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("layerdiff-capture-test-{}-{}", std::process::id(), name));
    let _ = fs::remove_dir_all(&d);
    d
}

fn read_f32(b: &[u8]) -> Vec<f32> {
    b.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn npy_round_trip() {
    let cases: Vec<Vec<usize>> = vec![vec![5], vec![3, 4], vec![2, 3, 4], vec![1000, 32000], vec![0, 4], vec![2, 1, 3, 7]];
    for shape in cases {
        let h = npy_header(&shape);
        assert_eq!(h.len() % 64, 0, "{:?}", shape);
        assert_eq!(*h.last().unwrap(), b'\n');
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n.min(100)).map(|i| i as f32 * 0.5 - 3.0).collect();
        if data.len() != n {
            let p = parse_npy_header(&h).unwrap();
            assert_eq!(p.shape, shape);
            continue;
        }
        let d = tmpdir(&format!("rt{}", shape.len()));
        fs::create_dir_all(&d).unwrap();
        let p = d.join("a.npy");
        write_npy_f32(&p, &shape, &data).unwrap();
        let b = fs::read(&p).unwrap();
        let hdr = parse_npy_header(&b).unwrap();
        assert_eq!(hdr.descr, "<f4");
        assert!(!hdr.fortran_order);
        assert_eq!(hdr.shape, shape);
        assert_eq!(hdr.data_offset % 64, 0);
        assert_eq!(read_f32(&b[hdr.data_offset..]), data);
        fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn npy_header_rejects_garbage() {
    assert!(parse_npy_header(b"hello").is_err());
    assert!(parse_npy_header(b"\x93NUMPY\x01\x00\xff\xff{}").is_err());
    assert!(parse_npy_header(b"\x93NUMPY\x09\x00\x00\x00").is_err());
}

#[test]
fn record_writes_ne_reversed_and_manifest_last() {
    let d = tmpdir("rec");
    let info = RunInfo { tokens: vec![1, 2, 3], prompt: "a \"b\"\n".into(), producer: "test 1".into(), ..RunInfo::default() };
    let mut r = Recorder::create(&d, info, false).unwrap();
    let x: Vec<f32> = (0..24).map(|i| i as f32).collect();
    assert_eq!(r.record("Qcur-0", "MUL_MAT", &[3, 8], &x).unwrap(), "Qcur-0");
    assert_eq!(r.record("Qcur-0", "ROPE", &[3, 2, 4], &x).unwrap(), "Qcur-0#2");
    assert_eq!(r.record_ggml("l_out-0", "ADD", &[8, 3, 1, 1], &x).unwrap(), "l_out-0");
    assert!(r.record("bad", "", &[5, 5], &x).is_err());
    assert!(r.record("big", "", &[2, 1, 3, 4, 1], &x[..24]).is_err());
    assert_eq!(r.record("batch1", "", &[1, 2, 3, 4], &x[..24]).unwrap(), "batch1"); // leading 1 dropped
    assert!(r.record("", "", &[24], &x).is_err());
    assert!(!d.join(MANIFEST).exists());
    let m = r.manifest_json();
    r.finish().unwrap();
    assert_eq!(fs::read_to_string(d.join(MANIFEST)).unwrap(), m);
    assert!(m.contains("\"ne\": [8, 3], \"file\": \"0000-Qcur-0.npy\""), "{}", m);
    assert!(m.contains("\"key\": \"Qcur-0#2\", \"name\": \"Qcur-0\", \"op\": \"ROPE\", \"src\": [], \"type\": \"f32\", \"ne\": [4, 2, 3], \"file\": \"0001-Qcur-0_2.npy\""), "{}", m);
    assert!(m.contains("\"ne\": [8, 3], \"file\": \"0002-l_out-0.npy\""), "{}", m);
    assert!(m.contains("\"prompt\": \"a \\\"b\\\"\\n\""), "{}", m);
    assert!(m.contains("\"producer\": \"test 1 (layerdiff-capture "), "{}", m);
    assert!(m.contains("\"sum\": 276, \"min\": 0, \"max\": 23"), "{}", m);
    let b = fs::read(d.join("0001-Qcur-0_2.npy")).unwrap();
    let h = parse_npy_header(&b).unwrap();
    assert_eq!(h.shape, vec![3, 2, 4]);
    assert_eq!(read_f32(&b[h.data_offset..]), x);
    let leftovers: Vec<_> = fs::read_dir(&d).unwrap().filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-")).collect();
    assert!(leftovers.is_empty());

    // an existing dump is refused without force, replaced with it
    let info = RunInfo { producer: "again".into(), ..RunInfo::default() };
    let e = Recorder::create(&d, info.clone(), false).err().unwrap();
    assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
    fs::write(d.join("notes.txt"), "kept").unwrap();
    let mut r = Recorder::create(&d, info, true).unwrap();
    r.record("x", "", &[2], &[1.0, 2.0]).unwrap();
    r.finish().unwrap();
    let mut names: Vec<String> = fs::read_dir(&d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, vec!["0000-x.npy", "manifest.json", "notes.txt"]);
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn stats_special_values() {
    let s = stats(&[1e8, 1.0, -1e8, 0.5]);
    assert_eq!(s, Stats { sum: 0.5, min: -1e8, max: 1e8, nan: 0, inf: 0 });
    let s = stats(&[f32::NAN, f32::INFINITY, -3.0]);
    assert!(s.sum.is_nan());
    assert_eq!((s.min, s.max, s.nan, s.inf), (-3.0, f32::INFINITY, 1, 1));
    let s = stats(&[f32::NAN]);
    assert_eq!((s.min, s.max), (0.0, 0.0));
    assert_eq!(json_f32(f32::NAN), "\"NaN\"");
    assert_eq!(json_f32(f32::NEG_INFINITY), "\"-Infinity\"");
    assert_eq!(json_f32(0.5), "0.5");
    assert_eq!(json_str("a\u{1}"), "\"a\\u0001\"");
}

#[test]
fn keys_like_keymaker() {
    let d = tmpdir("keys");
    let mut r = Recorder::create(&d, RunInfo::default(), false).unwrap();
    let one = [0.0f32];
    let keys: Vec<String> = ["a", "a", "a#2", "b", "a"].iter().map(|n| r.record(n, "", &[1], &one).unwrap()).collect();
    assert_eq!(keys, vec!["a", "a#2", "a#2@2", "b", "a#3"]);
    assert_eq!(node_file_name(7, "Qcur-0 (view)#2"), "0007-Qcur-0__view__2.npy");
    fs::remove_dir_all(&d).unwrap();
}
