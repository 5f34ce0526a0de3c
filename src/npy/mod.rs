//! NumPy `.npy` files (format versions 1.0–3.0): reading little-endian `float32`,
//! `float16`, `int64` and `int32` arrays in C order, and writing `float32` arrays atomically (to a
//! temporary file that is renamed into place, so a failure never leaves a partial file).

mod header;

use std::io::Write;
use std::path::Path;

use thiserror::Error;

/// Why a `.npy` file could not be read or written.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum NpyError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not a `.npy` file this module reads.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// The elements of an array, by dtype.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// `<f4`.
    F32(Vec<f32>),
    /// `<i8`.
    I64(Vec<i64>),
    /// `<i4`.
    I32(Vec<i32>),
    /// `<f2`: IEEE half bits (see [`crate::half`]).
    F16(Vec<u16>),
}

impl NpyData {
    /// NumPy's name of the dtype (`float32`, `int64`, `int32`).
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "float32",
            NpyData::I64(_) => "int64",
            NpyData::I32(_) => "int32",
            NpyData::F16(_) => "float16",
        }
    }
}

/// An array read from a `.npy` file.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The shape (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The elements, in C order.
    pub data: NpyData,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Reads a `.npy` file. Anything but a regular file (a FIFO, a device, a directory) is
/// refused before it is opened, so reading never blocks on a pipe.
pub fn read(path: impl AsRef<Path>) -> Result<NpyArray, NpyError> {
    let path = path.as_ref();
    let io_err = |source| NpyError::Io {
        path: path.display().to_string(),
        source,
    };
    if !std::fs::metadata(path).map_err(io_err)?.is_file() {
        return Err(NpyError::Format {
            path: path.display().to_string(),
            reason: "not a regular file".into(),
        });
    }
    let bytes = std::fs::read(path).map_err(io_err)?;
    parse(&bytes).map_err(|reason| NpyError::Format {
        path: path.display().to_string(),
        reason,
    })
}

/// Parses the bytes of a `.npy` file.
pub fn parse(bytes: &[u8]) -> Result<NpyArray, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a .npy file (missing the \\x93NUMPY magic)".into());
    }
    let major = bytes[6];
    let (header_len, header_start) = match major {
        1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(format!("unsupported .npy format version {major}")),
    };
    let data_start = header_start + header_len;
    let header = bytes.get(header_start..data_start).ok_or("the header is cut short")?;
    let header = std::str::from_utf8(header).map_err(|_| "the header is not text")?;
    let header::Header {
        descr,
        fortran_order,
        shape,
    } = header::parse(header)?;
    if fortran_order {
        return Err("Fortran-order arrays are not supported; save with np.ascontiguousarray".into());
    }
    let elem_size = match descr.as_str() {
        "<f4" | "<i4" => 4,
        "<i8" => 8,
        "<f2" => 2,
        other => {
            return Err(format!(
            "dtype {other} is not supported: expected float32 ('<f4'), float16 ('<f2'), int64 ('<i8') or int32 ('<i4')"
        ))
        }
    };
    // Sizes from the header are checked before anything is allocated from them.
    let count = shape.iter().try_fold(1_usize, |acc, &d| acc.checked_mul(d));
    let bytes_needed = count.and_then(|c| c.checked_mul(elem_size));
    let (Some(count), Some(needed)) = (count, bytes_needed) else {
        return Err(format!("shape {shape:?} overflows: its data could never fit in memory"));
    };
    let payload = &bytes[data_start..];
    if payload.len() < needed {
        return Err(format!(
            "{count} elements need {needed} data bytes, the file has {}",
            payload.len()
        ));
    }
    if payload.len() > needed {
        return Err(format!(
            "shape {shape:?} needs {needed} data bytes, the file has {}",
            payload.len()
        ));
    }
    let data = match descr.as_str() {
        "<f4" => NpyData::F32(cast_le(payload, f32::from_le_bytes)),
        "<i8" => NpyData::I64(cast_le(payload, i64::from_le_bytes)),
        "<i4" => NpyData::I32(cast_le(payload, i32::from_le_bytes)),
        _ => NpyData::F16(cast_le(payload, u16::from_le_bytes)),
    };
    Ok(NpyArray { shape, data })
}

/// The little-endian elements of `payload` (a whole number of them: checked by the caller).
fn cast_le<T, const N: usize>(payload: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    payload
        .chunks_exact(N)
        .map(|c| from(c.try_into().unwrap_or([0; N])))
        .collect()
}

/// The bytes of a version 1.0 `.npy` file holding `data` (C order) with `shape`.
pub fn encode_f32(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let shape_text = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_text}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n' is a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&[1, 0]);
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for value in data {
        bytes.extend_from_slice(&value.to_le_bytes());
    }
    bytes
}

/// One `float32` array to write: where, its shape, its values (C order).
#[derive(Debug, Clone, Copy)]
pub struct NpyFile<'a> {
    /// The destination.
    pub path: &'a Path,
    /// The shape.
    pub shape: &'a [usize],
    /// The values.
    pub data: &'a [f32],
}

/// Writes a `float32` `.npy` file atomically: to `PATH.tmp-PID` beside it, then renamed.
pub fn write_f32(path: impl AsRef<Path>, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    write_all(&[NpyFile {
        path: path.as_ref(),
        shape,
        data,
    }])
}

/// Writes several `float32` `.npy` files together: every file to a temporary beside it
/// first, and only when all of them are written are they renamed into place, so a failure
/// while writing (a full disk, a missing folder, no permission) changes none of them.
pub fn write_all(files: &[NpyFile<'_>]) -> Result<(), NpyError> {
    let temp = |path: &Path| {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".tmp-{}", std::process::id()));
        std::path::PathBuf::from(name)
    };
    let mut written = Vec::new();
    for file in files {
        let tmp = temp(file.path);
        let result = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(&encode_f32(file.shape, file.data))?;
            f.sync_all()
        });
        written.push(tmp);
        if let Err(source) = result {
            for tmp in &written {
                let _ = std::fs::remove_file(tmp);
            }
            return Err(NpyError::Io {
                path: file.path.display().to_string(),
                source,
            });
        }
    }
    for (file, tmp) in files.iter().zip(&written) {
        std::fs::rename(tmp, file.path).map_err(|source| {
            for tmp in &written {
                let _ = std::fs::remove_file(tmp);
            }
            NpyError::Io {
                path: file.path.display().to_string(),
                source,
            }
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_f32() {
        for shape in [vec![], vec![3], vec![2, 3]] {
            let count: usize = shape.iter().product();
            let data: Vec<f32> = (0..count).map(|i| i as f32 * 0.5 - 1.0).collect();
            let bytes = encode_f32(&shape, &data);
            assert_eq!((bytes.len() - data.len() * 4) % 64, 0, "header is padded to 64");
            let array = parse(&bytes).expect("parses");
            assert_eq!(array.shape, shape);
            assert_eq!(array.data, NpyData::F32(data));
        }
    }

    #[test]
    fn reads_numpy_written_int64() {
        // np.save(f, np.array([1, -100, 7], dtype=np.int64)) with NumPy 2.4
        let mut bytes = b"\x93NUMPY\x01\x00v\x00".to_vec();
        let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }";
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(&vec![b' '; 0x76 - header.len() - 1]);
        bytes.push(b'\n');
        for v in [1_i64, -100, 7] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let array = parse(&bytes).expect("parses");
        assert_eq!(array.shape, vec![3]);
        assert_eq!(array.data, NpyData::I64(vec![1, -100, 7]));
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        assert!(parse(b"hello world").unwrap_err().contains("magic"));
        let mut bytes = encode_f32(&[2], &[1.0, 2.0]);
        bytes.truncate(bytes.len() - 1);
        assert!(parse(&bytes).unwrap_err().contains("need 8 data bytes"));
        bytes.extend_from_slice(&[0, 0]);
        assert!(parse(&bytes)
            .unwrap_err()
            .contains("needs 8 data bytes, the file has 9"));
        let big_endian: Vec<u8> = encode_f32(&[1], &[1.0])
            .iter()
            .map(|&b| if b == b'<' { b'>' } else { b })
            .collect();
        let err = parse(&big_endian).unwrap_err();
        assert!(err.contains("dtype >f4 is not supported"), "{err}");
    }

    /// A version 1.0 file with `header` (padded like NumPy's) and `payload`.
    fn file(header: &str, payload: &[u8]) -> Vec<u8> {
        let mut text = header.to_string();
        while !(10 + text.len() + 1).is_multiple_of(64) {
            text.push(' ');
        }
        text.push('\n');
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[1, 0]);
        bytes.extend_from_slice(&(text.len() as u16).to_le_bytes());
        bytes.extend_from_slice(text.as_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn sizes_from_the_header_are_checked_before_use() {
        // 2^62 float32 elements are 2^64 bytes: the byte count wraps to 0 in u64, which an
        // empty payload would match; elements that overflow on their own likewise.
        for shape in [
            "(4611686018427387904,)",
            "(2305843009213693952, 2)",
            "(4294967296, 4294967296, 2)",
        ] {
            let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
            let err = parse(&file(&header, &[])).unwrap_err();
            assert!(err.contains("overflows"), "{shape}: {err}");
        }
        // A huge shape with a small payload is refused before anything the size of the shape.
        let header = "{'descr': '<i8', 'fortran_order': False, 'shape': (1073741824, 16), }";
        let err = parse(&file(header, &[0; 128])).unwrap_err();
        assert!(err.contains("need 137438953472 data bytes, the file has 128"), "{err}");
        // A repeated 'shape' is refused, as NumPy does, rather than read as the first one.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'shape': (2,), }";
        assert!(parse(&file(header, &[0; 4])).unwrap_err().contains("repeated"));
    }

    #[test]
    fn random_file_mutations_never_panic() {
        // Bytes anywhere in a valid file (magic, version, header length, header, payload)
        // replaced at random, 20,000 times: each file parses or is refused, never panics.
        let valid = encode_f32(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let mut next = crate::testing::xorshift(0x2545_f491_4f6c_dd1d_u64);
        for _ in 0..20_000 {
            let mut bytes = valid.clone();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            if next().is_multiple_of(4) {
                bytes.truncate((next() as usize) % bytes.len());
            }
            let _ = parse(&bytes);
        }
    }
}
