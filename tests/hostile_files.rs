//! A corpus of hostile `.npy` files given to the CLI as input, as targets and as class
//! weights: malformed and lying headers, wrong dtypes and shapes, truncated and padded
//! payloads, out-of-range targets. Every one is refused with exactly one line on stderr that
//! names the offending file (and, where there is one, the reason), exit 1, no panic, no hang,
//! and no output written. (Issue 12; tests/hostile.rs has the paths, options and bench sizes.)

mod common;

use std::path::Path;

use common::cli::{compute, refused};

fn header(descr: &str, fortran: &str, shape: &str) -> String {
    format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
}

fn f32_header(shape: &str) -> String {
    header("<f4", "False", shape)
}

/// A version 1.0 file with this header text and payload.
fn v1(header: &str, payload: &[u8]) -> Vec<u8> {
    common::npy_bytes(header, payload)
}

/// A file of any version, with a 4-byte header length for versions 2 and 3.
fn versioned(major: u8, header_len: u32, header: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
    if major == 1 {
        bytes.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        bytes.extend_from_slice(&header_len.to_le_bytes());
    }
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Files that are not a readable `.npy` array at all, whatever they are used for: each with
/// a fragment of the reason the message must give.
#[rustfmt::skip]
fn malformed() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let six = f32s(&[1.0; 6]);
    let h = f32_header("(2, 3)");
    vec![
        ("empty", Vec::new(), ""),
        ("magic only", b"\x93NUMPY".to_vec(), ""),
        ("wrong magic", { let mut b = v1(&h, &six); b[1] = b'X'; b }, ""),
        ("text file", b"1.0, 2.0, 3.0\n".to_vec(), ""),
        ("version 0", versioned(0, 10, "{}        ", &six), ""),
        ("version 9", versioned(9, 10, "{}        ", &six), ""),
        ("header longer than the file", versioned(1, 5000, &h, &[]), ""),
        ("v2 header length 4 GiB", versioned(2, u32::MAX, &h, &[]), ""),
        ("v3 header cut short", versioned(3, 200, &h[..20], &[]), ""),
        ("header of NULs", versioned(1, 64, &"\0".repeat(64), &six), ""),
        ("not a dict", v1("[1, 2, 3]", &six), ""),
        ("unterminated string", v1("{'descr': '<f4, 'fortran_order': False, 'shape': (2, 3), }", &six), ""),
        ("unterminated dict", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", &six), ""),
        ("unterminated tuple", v1("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3 }", &six), ""),
        ("nested dict", v1("{'descr': {'a': 1}, 'fortran_order': False, 'shape': (2, 3), }", &six), ""),
        ("no descr", v1("{'fortran_order': False, 'shape': (2, 3), }", &six), "descr"),
        ("no fortran_order", v1("{'descr': '<f4', 'shape': (2, 3), }", &six), "fortran_order"),
        ("descr twice", v1( "{'descr': '<f4', 'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }", &six, ), "repeated"),
        ("extra key", v1( "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1, }", &six, ), "'x'"),
        ("descr not a string", v1("{'descr': 4, 'fortran_order': False, 'shape': (2, 3), }", &six), "descr"),
        ("fortran_order a string", v1(&header("<f4", "'False'", "(2, 3)"), &six), "fortran_order"),
        ("fortran order", v1(&header("<f4", "True", "(2, 3)"), &six), "Fortran"),
        ("shape a list", v1(&f32_header("[2, 3]"), &six), "shape"),
        ("shape of floats", v1(&f32_header("(2.0, 3)"), &six), "'shape'"),
        ("shape missing comma", v1(&f32_header("(2 3)"), &six), ""),
        ("shape with a name", v1(&f32_header("(rows, 3)"), &six), "dimension"),
        ("negative zero dimension", v1(&f32_header("(-0, 3)"), &[]), ""),
        ("dimension 2^64", v1(&f32_header("(18446744073709551616, 1)"), &[]), ""),
        ("elements overflow", v1(&f32_header("(4294967296, 4294967296)"), &[]), "overflows"),
        ("bytes overflow", v1(&f32_header("(4611686018427387904,)"), &[]), "overflows"),
        ("claims 2^40 elements", v1(&f32_header("(1099511627776, 1)"), &six), "data bytes"),
        ("payload one byte short", v1(&h, &six[..23]), "data bytes"),
        ("payload four bytes long", v1(&h, &[six.clone(), vec![0; 4]].concat()), "data bytes"),
        ("big-endian float32", v1(&header(">f4", "False", "(2, 3)"), &six), ">f4"),
        ("float64", v1(&header("<f8", "False", "(2, 3)"), &[six.clone(), six.clone()].concat()), "<f8"),
        ("complex64", v1(&header("<c8", "False", "(2, 3)"), &[six.clone(), six.clone()].concat()), "<c8"),
        ("bool", v1(&header("|b1", "False", "(2, 3)"), &[1; 6]), "|b1"),
        ("unicode", v1(&header("<U1", "False", "(2, 3)"), &six), "<U1"),
        ("object", v1(&header("|O", "False", "(2, 3)"), &[0; 48]), "|O"),
        ("structured", v1( "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2, 3), }", &six, ), "descr"),
        ("uint8", v1(&header("|u1", "False", "(2, 3)"), &[0; 6]), "|u1"),
        ("non-ASCII header", v1( "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'é': 1, }", &six, ), ""),
    ]
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).expect("write");
}

/// A valid 2 × 3 float32 input, int64 targets and float32 weights in `dir`.
fn valid_inputs(dir: &Path) {
    write(
        dir,
        "x.npy",
        &v1(&f32_header("(2, 3)"), &f32s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
    );
    write(dir, "t.npy", &v1(&header("<i8", "False", "(2,)"), &i64s(&[0, 2])));
    write(dir, "w.npy", &v1(&f32_header("(3,)"), &f32s(&[1.0, 1.0, 1.0])));
}

#[test]
fn malformed_files_are_refused_in_every_role() {
    let dir = common::scratch("hostile-files", "malformed");
    valid_inputs(&dir);
    let cases = malformed();
    for (i, (what, bytes, reason)) in cases.iter().enumerate() {
        let name = format!("m{i}.npy");
        write(&dir, &name, bytes);
        let roles = [
            compute("cross-entropy", &name, Some("t.npy"), &[]),
            compute("cross-entropy", "x.npy", Some(&name), &[]),
            compute("cross-entropy", "x.npy", Some("t.npy"), &["--weight", &name]),
        ];
        for role in roles {
            let args: Vec<&str> = role.into_iter().chain(["--backend", "cpu", "--out", "o.npy"]).collect();
            refused(&dir, &args, &name);
            if !reason.is_empty() {
                refused(&dir, &args, reason);
            }
            assert!(!dir.join("o.npy").exists(), "{what}: no output");
        }
    }
    assert!(cases.len() >= 40, "the corpus shrank: {}", cases.len());
}

/// Readable arrays in the wrong place: shapes that do not fit the loss, targets out of range,
/// dtypes a role does not take. Each with a fragment of the message.
#[test]
fn arrays_that_do_not_fit_are_refused() {
    let dir = common::scratch("hostile-files", "mismatch");
    valid_inputs(&dir);
    let f32_file = |name: &str, shape: &str, v: &[f32]| write(&dir, name, &v1(&f32_header(shape), &f32s(v)));
    let i64_file =
        |name: &str, shape: &str, v: &[i64]| write(&dir, name, &v1(&header("<i8", "False", shape), &i64s(v)));
    f32_file("scalar.npy", "()", &[1.0]);
    f32_file("rank3.npy", "(1, 2, 3)", &[0.0; 6]);
    f32_file("rank1.npy", "(6,)", &[0.0; 6]);
    i64_file("t3.npy", "(3,)", &[0, 1, 2]);
    i64_file("t_out.npy", "(2,)", &[0, 3]);
    i64_file("t_neg.npy", "(2,)", &[0, -5]);
    i64_file("t_max.npy", "(2,)", &[i64::MAX, 0]);
    i64_file("t_min.npy", "(2,)", &[0, i64::MIN]);
    i64_file("t_2d.npy", "(2, 1)", &[0, 1]);
    f32_file("p_wrong.npy", "(2, 2)", &[0.5; 4]);
    f32_file("w4.npy", "(4,)", &[1.0; 4]);
    f32_file("w_nan.npy", "(3,)", &[1.0, f32::NAN, 1.0]);
    f32_file("w_2d.npy", "(1, 3)", &[1.0; 3]);
    i64_file("w_int.npy", "(3,)", &[1, 1, 1]);
    f32_file("y_short.npy", "(2, 2)", &[0.5; 4]);
    f32_file("y_big.npy", "(2, 3)", &[0.5, 2.0, 0.5, 0.5, 0.5, 0.5]);
    f32_file("p_big.npy", "(2, 3)", &[0.5, 1.5, 0.5, 0.5, 0.5, 0.5]);
    f32_file("p_nan.npy", "(2, 3)", &[0.5, f32::NAN, 0.5, 0.5, 0.5, 0.5]);
    let ce = |input, target| compute("cross-entropy", input, Some(target), &[]);
    let weighted = |weight| compute("cross-entropy", "x.npy", Some("t.npy"), &["--weight", weight]);
    let cases = [
        (ce("scalar.npy", "t.npy"), "scalar.npy"),
        // An unbatched input takes one 0-d class index, not two.
        (ce("rank1.npy", "t.npy"), "for --input [6], got int64 [2]"),
        // A K-dimensional input [1, 2, 3] takes class indices [1, 3], not [2].
        (
            ce("rank3.npy", "t.npy"),
            "int64 or int32 [1, 3] (class indices) or float32 [1, 2, 3]",
        ),
        (ce("x.npy", "t3.npy"), "t3.npy"),
        (ce("x.npy", "t_out.npy"), "out of range"),
        (ce("x.npy", "t_neg.npy"), "-5"),
        (ce("x.npy", "t_max.npy"), "9223372036854775807"),
        (ce("x.npy", "t_min.npy"), "-9223372036854775808"),
        (ce("x.npy", "t_2d.npy"), "t_2d.npy"),
        (ce("x.npy", "p_wrong.npy"), "p_wrong.npy"),
        (weighted("w4.npy"), "w4.npy"),
        (weighted("w_nan.npy"), "NaN"),
        (weighted("w_2d.npy"), "w_2d.npy"),
        (weighted("w_int.npy"), "w_int.npy"),
        (weighted("missing.npy"), "missing.npy"),
        (ce("missing.npy", "t.npy"), "missing.npy"),
        (compute("mse", "x.npy", Some("y_short.npy"), &[]), "y_short.npy"),
        (compute("mse", "x.npy", Some("t.npy"), &[]), "t.npy"),
        (compute("bce", "x.npy", Some("y_short.npy"), &[]), "y_short.npy"),
        (compute("bce", "p_big.npy", Some("p_big.npy"), &[]), "1.5"),
        (compute("bce", "p_nan.npy", Some("p_nan.npy"), &[]), "NaN"),
        (compute("kl-div", "x.npy", Some("rank3.npy"), &[]), "rank3.npy"),
        (compute("nll", "x.npy", Some("y_big.npy"), &[]), ""),
        (compute("softmax", "scalar.npy", None, &[]), "scalar.npy"),
        (compute("cross-entropy", "x.npy", None, &[]), "--target"),
    ];
    for (args, want) in &cases {
        for backend in ["cpu", "reference", "gpu"] {
            let args: Vec<&str> = args
                .iter()
                .copied()
                .chain(["--backend", backend, "--out", "o.npy"])
                .collect();
            refused(&dir, &args, want);
            assert!(!dir.join("o.npy").exists(), "{args:?}: no output");
        }
    }
}
