"""Number formats shared by the golden-value scripts beside this file: the shortest
decimals that read back as the same value, so that clippy finds no excess digits."""
import struct


def f32(v):
    """The shortest decimal that reads back as the same f32."""
    want = struct.pack("<f", v)
    for digits in range(1, 10):
        text = f"{v:.{digits}g}"
        if struct.pack("<f", float(text)) == want:
            return text if any(c in text for c in ".en") else text + ".0"
    return repr(v)


def f64(v):
    """The shortest decimal that reads back as the same f64."""
    return repr(v)


def floats(values):
    """f64 values as a Rust list's items (NaN as f64::NAN)."""
    return ", ".join(f64(v) if v == v else "f64::NAN" for v in values)


def f32s(values):
    """f32 values as a Rust list's items."""
    return ", ".join(f32(float(v)) for v in values)
