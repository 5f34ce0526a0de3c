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
