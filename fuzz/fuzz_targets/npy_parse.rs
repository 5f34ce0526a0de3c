//! Any bytes through the `.npy` parser: it returns an array or an error, never panics, never
//! allocates from an unchecked size, and what it accepts is self-consistent (the shape's
//! element count is the data's length) and survives a write and a re-read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wgpu_loss::npy::{self, NpyData};

fuzz_target!(|bytes: &[u8]| {
    let Ok(array) = npy::parse(bytes) else {
        return;
    };
    let elements: usize = array.shape.iter().product();
    let len = match &array.data {
        NpyData::F32(v) => v.len(),
        NpyData::I64(v) => v.len(),
        NpyData::I32(v) => v.len(),
        NpyData::F16(v) => v.len(),
    };
    assert_eq!(elements, len, "shape {:?} against {len} elements", array.shape);
    if let NpyData::F32(v) = &array.data {
        let again = npy::parse(&npy::encode_f32(&array.shape, v)).expect("our own file parses");
        assert_eq!(again.shape, array.shape);
    }
});
