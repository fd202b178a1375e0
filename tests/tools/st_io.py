"""st_io.py: read and write safetensors files with json + numpy only.

The format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
(an object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
plus an optional "__metadata__" object of string -> string), then the data
buffer; offsets are relative to the start of the buffer.

Reading is strict, like the reference implementation: the header must be a
JSON object that fits in the file, every entry must have a known dtype, a
shape of non-negative integers and offsets whose span equals the shape's
byte size, and the tensors, sorted by offset, must tile the buffer exactly
(no gaps, no overlap, nothing left over). Errors raise SafetensorsError with
the file name and the tensor at fault.

BF16 has no numpy type: read() widens it to float32 unless raw_bf16=True
(then the raw uint16 bit patterns are returned); write() narrows float32 to
BF16 with round-to-nearest-even when asked for dtype "BF16".

Usable as a module (read, read_header, write) or from the command line:
    python3 st_io.py list FILE        # names, dtypes, shapes
"""
import json
import os
import struct
import sys

import numpy as np

# safetensors dtype -> numpy dtype (little-endian), and back.
_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # bit patterns; widened on read
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_FROM_NUMPY = {
    np.dtype("float64"): "F64",
    np.dtype("float32"): "F32",
    np.dtype("float16"): "F16",
    np.dtype("int64"): "I64",
    np.dtype("int32"): "I32",
    np.dtype("int16"): "I16",
    np.dtype("int8"): "I8",
    np.dtype("uint8"): "U8",
    np.dtype("bool"): "BOOL",
}
# The reference implementation refuses headers above 100 MB.
MAX_HEADER = 100_000_000


class SafetensorsError(ValueError):
    """A file that is not valid safetensors, or a tensor that cannot be written."""


def bf16_to_f32(bits):
    """uint16 BF16 bit patterns -> float32 array of the same shape."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """float32 -> uint16 BF16 bit patterns, round to nearest even; NaN stays NaN."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    rounded = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    nan = np.isnan(x)
    if nan.any():
        rounded[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)  # keep it quiet NaN
    return rounded


def _parse_header(raw, name, file_size):
    """Validate the header bytes; returns (metadata, entries sorted by offset)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SafetensorsError(f"{name}: header is not UTF-8 ({e})") from None
    if not text.startswith("{"):
        raise SafetensorsError(f"{name}: header does not start with '{{'")
    try:
        hdr = json.loads(text)
    except json.JSONDecodeError as e:
        raise SafetensorsError(f"{name}: header is not valid JSON ({e})") from None
    if not isinstance(hdr, dict):
        raise SafetensorsError(f"{name}: header is not a JSON object")
    meta = hdr.pop("__metadata__", None)
    if meta is not None:
        if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
            raise SafetensorsError(f"{name}: __metadata__ must map strings to strings")
    entries = []
    for tname, info in hdr.items():
        where = f"{name}: tensor '{tname}'"
        if not isinstance(info, dict):
            raise SafetensorsError(f"{where}: entry is not an object")
        extra = set(info) - {"dtype", "shape", "data_offsets"}
        if extra:
            raise SafetensorsError(f"{where}: unexpected field(s) {sorted(extra)}")
        dt = info.get("dtype")
        if dt not in _DTYPES:
            raise SafetensorsError(f"{where}: unsupported dtype {dt!r}")
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise SafetensorsError(f"{where}: shape must be a list of non-negative integers, found {shape!r}")
        offs = info.get("data_offsets")
        if (not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs)
                or offs[0] < 0 or offs[1] < offs[0]):
            raise SafetensorsError(f"{where}: data_offsets must be [begin, end] with 0 <= begin <= end, found {offs!r}")
        n = 1
        for d in shape:
            n *= d
        nbytes = n * _DTYPES[dt].itemsize
        if offs[1] - offs[0] != nbytes:
            raise SafetensorsError(f"{where}: shape {shape} of {dt} needs {nbytes} bytes, "
                                   f"data_offsets span {offs[1] - offs[0]}")
        entries.append((offs[0], offs[1], tname, dt, tuple(shape)))
    entries.sort()
    pos = 0
    for b, e, tname, _, _ in entries:
        if b != pos:
            kind = "overlaps the previous tensor" if b < pos else f"leaves a gap of {b - pos} bytes"
            raise SafetensorsError(f"{name}: tensor '{tname}' at offset {b} {kind} (expected {pos})")
        pos = e
    if pos != file_size:
        raise SafetensorsError(f"{name}: tensors cover {pos} bytes of data but the file holds {file_size}")
    return meta or {}, entries


def _open_checked(path):
    """Read and validate the header of path; returns (metadata, entries, data start offset)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: {size} bytes, too short for the 8-byte header length")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER:
            raise SafetensorsError(f"{path}: header length {n} exceeds the {MAX_HEADER}-byte limit")
        if 8 + n > size:
            raise SafetensorsError(f"{path}: header length {n} runs past the end of the {size}-byte file")
        raw = f.read(n)
    meta, entries = _parse_header(raw, path, size - 8 - n)
    return meta, entries, 8 + n


def read_header(path):
    """Validated header of path: (metadata dict, {name: (dtype, shape)})."""
    meta, entries, _ = _open_checked(path)
    return meta, {t: (dt, shape) for _, _, t, dt, shape in entries}


def read(path, names=None, raw_bf16=False, with_metadata=False):
    """Tensors of path as {name: numpy array} (own, aligned, writable copies).

    names: an iterable restricting which tensors are loaded (each must exist).
    raw_bf16: return BF16 tensors as uint16 bit patterns instead of float32.
    with_metadata: return (tensors, metadata) instead."""
    meta, entries, start = _open_checked(path)
    if names is not None:
        want = set(names)
        missing = want - {t for _, _, t, _, _ in entries}
        if missing:
            raise SafetensorsError(f"{path}: no tensor named {sorted(missing)[0]!r}")
        entries = [e for e in entries if e[2] in want]
    out = {}
    buf = np.memmap(path, dtype=np.uint8, mode="r") if entries else None
    for b, e, tname, dt, shape in entries:
        arr = np.frombuffer(buf, dtype=_DTYPES[dt], count=(e - b) // _DTYPES[dt].itemsize,
                            offset=start + b).reshape(shape)
        if dt == "BF16" and not raw_bf16:
            arr = bf16_to_f32(arr)
        out[tname] = np.array(arr, copy=True)
    del buf
    return (out, meta) if with_metadata else out


def write(path, tensors, metadata=None, dtypes=None):
    """Write {name: array-like} to path as safetensors, atomically (a temporary
    file renamed into place, so an existing file survives a failure).

    dtypes: optional {name: safetensors dtype}, e.g. {"x": "BF16"}, to store a
    tensor narrower than its array (float arrays only). Torch tensors are
    accepted (detached and copied to CPU). Tensors are written in name order."""
    dtypes = dtypes or {}
    if metadata is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise SafetensorsError(f"{path}: metadata must map strings to strings")
    if "__metadata__" in tensors:
        raise SafetensorsError(f"{path}: '__metadata__' cannot be a tensor name")
    header, blobs, pos = {}, [], 0
    for tname in sorted(tensors):
        x = tensors[tname]
        if hasattr(x, "detach"):  # torch.Tensor without importing torch
            x = x.detach().cpu().numpy()
        x = np.asarray(x)
        dt = dtypes.get(tname) or _FROM_NUMPY.get(x.dtype)
        if dt is None:
            raise SafetensorsError(f"{path}: tensor '{tname}': numpy dtype {x.dtype} has no safetensors dtype")
        if dt not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor '{tname}': unsupported dtype {dt!r}")
        if dt == "BF16":
            if x.dtype == np.uint16:
                data = np.ascontiguousarray(x)
            elif x.dtype.kind == "f":
                data = f32_to_bf16(x.astype(np.float32))
            else:
                raise SafetensorsError(f"{path}: tensor '{tname}': cannot store {x.dtype} as BF16")
        else:
            if x.dtype.kind != _DTYPES[dt].kind and not (dt == "BOOL" and x.dtype == np.bool_):
                raise SafetensorsError(f"{path}: tensor '{tname}': cannot store {x.dtype} as {dt}")
            data = np.ascontiguousarray(x, dtype=_DTYPES[dt])
        b = data.tobytes()
        header[tname] = {"dtype": dt, "shape": [int(d) for d in x.shape], "data_offsets": [pos, pos + len(b)]}
        blobs.append(b)
        pos += len(b)
    if metadata:
        header = {"__metadata__": dict(metadata), **header}
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)  # keep the buffer 8-byte aligned
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for b in blobs:
                f.write(b)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _selftest():
    """Round trips and rejections; quick."""
    import tempfile
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "t.safetensors")
        ts = {
            "a.weight": rng.standard_normal((3, 5)).astype(np.float32),
            "b": rng.standard_normal(7).astype(np.float16),
            "ids": np.arange(6, dtype=np.int64).reshape(2, 3),
            "i32": np.array([1, -2], dtype=np.int32),
            "u8": np.array([0, 255], dtype=np.uint8),
            "empty": np.zeros((0, 4), np.float32),
            "scalar": np.float32(2.5),
        }
        write(p, ts, metadata={"format": "pt"})
        back, meta = read(p, with_metadata=True)
        assert meta == {"format": "pt"}
        for k, v in ts.items():
            assert back[k].dtype == np.asarray(v).dtype and np.array_equal(back[k], v), k
        # BF16: exact for values with 8 significant bits, round-to-nearest-even otherwise.
        x = np.array([1.0, -2.5, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 3e38, np.inf], np.float32)
        write(p, {"x": x}, dtypes={"x": "BF16"})
        y = read(p)["x"]
        assert y.dtype == np.float32
        assert list(y[:4]) == [1.0, -2.5, 1.0, 1 + 4 * 2 ** -8], y
        assert np.isinf(y[5])
        assert read(p, raw_bf16=True)["x"].dtype == np.uint16
        # Corruptions must be rejected.
        write(p, {"a": np.ones(4, np.float32), "b": np.ones(2, np.float32)})
        good = open(p, "rb").read()
        (n,) = struct.unpack("<Q", good[:8])
        hdr = good[8:8 + n].decode()

        def bad(blob, what):
            open(p, "wb").write(blob)
            try:
                read(p)
            except SafetensorsError:
                return
            raise AssertionError("accepted: " + what)

        def with_header(h, data=good[8 + n:]):
            h = h.encode()
            return struct.pack("<Q", len(h)) + h + data

        bad(good[:5], "short file")
        bad(struct.pack("<Q", 10 ** 9) + good[8:], "huge header length")
        bad(struct.pack("<Q", len(good)) + good[8:], "header past end")
        bad(good[:-1], "truncated data")
        bad(good + b"\0", "trailing data")
        bad(with_header(hdr.replace('"F32"', '"F99"', 1)), "bad dtype")
        bad(with_header(hdr.replace("[4]", "[5]", 1)), "shape/offset mismatch")
        bad(with_header(hdr.replace("[16,24]", "[8,16]")), "overlap")
        bad(with_header("[1,2]" + " " * (len(hdr) - 5)), "non-object header")
        bad(with_header(hdr[:-3] + "   "), "broken JSON")
    print("st_io self-test: ok")


def _main(argv):
    if len(argv) == 2 and argv[1] == "selftest":
        _selftest()
        return 0
    if len(argv) == 3 and argv[1] == "list":
        try:
            meta, hdr = read_header(argv[2])
        except (OSError, SafetensorsError) as e:
            print(f"st_io: {e}", file=sys.stderr)
            return 1
        for k, v in meta.items():
            print(f"# {k}: {v}")
        for name, (dt, shape) in sorted(hdr.items()):
            print(f"{name}\t{dt}\t{list(shape)}")
        return 0
    print("usage: st_io.py list FILE | st_io.py selftest", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
