"""Read a TensorFlow checkpoint (tensor bundle: ``<prefix>.index`` + ``<prefix>.data-*``) without TensorFlow.

The index is a LevelDB-style sorted table mapping each variable name to a ``BundleEntryProto`` (dtype, shape,
shard, byte offset and size in the data file); the data files hold the raw little-endian tensors. Only what
pretrained music models need is supported: uncompressed tables, unsliced float/int tensors.
"""

from __future__ import annotations

import glob
import struct
from pathlib import Path

import numpy as np

from core.errors import UserError

_MAGIC = 0xDB4775248B80FB57
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_, 19: np.float16}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[i]
        i += 1
        out |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return out, i


def _block(data: bytes, offset: int, size: int) -> list[tuple[bytes, bytes]]:
    """Key/value entries of one table block (prefix-compressed keys, restart array at the end)."""
    if data[offset + size] != 0:
        raise UserError("compressed TensorFlow checkpoint tables are not supported")
    blk = data[offset : offset + size]
    (n_restarts,) = struct.unpack_from("<I", blk, len(blk) - 4)
    end = len(blk) - 4 - 4 * n_restarts
    entries, key, i = [], b"", 0
    while i < end:
        shared, i = _varint(blk, i)
        unshared, i = _varint(blk, i)
        vlen, i = _varint(blk, i)
        key = key[:shared] + blk[i : i + unshared]
        i += unshared
        entries.append((key, blk[i : i + vlen]))
        i += vlen
    return entries


def _fields(msg: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs of a protobuf message (varint, fixed32/64 and length-delimited fields)."""
    out, i = [], 0
    while i < len(msg):
        tag, i = _varint(msg, i)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            v, i = _varint(msg, i)
        elif wire == 1:
            v, i = int.from_bytes(msg[i : i + 8], "little"), i + 8
        elif wire == 5:
            v, i = int.from_bytes(msg[i : i + 4], "little"), i + 4
        elif wire == 2:
            n, i = _varint(msg, i)
            v, i = msg[i : i + n], i + n
        else:
            raise UserError(f"unsupported protobuf wire type {wire} in checkpoint index")
        out.append((num, v))
    return out


def read_tf_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every variable of the checkpoint at ``prefix`` (the path without ``.index``), as numpy arrays."""
    prefix = str(prefix)
    index_path = Path(prefix + ".index")
    if not index_path.is_file():
        raise UserError(f"no TensorFlow checkpoint index at {index_path}")
    data = index_path.read_bytes()
    if len(data) < 48 or struct.unpack_from("<Q", data, len(data) - 8)[0] != _MAGIC:
        raise UserError(f"{index_path} is not a TensorFlow checkpoint index (bad magic number)")
    footer = data[-48:]
    _, i = _varint(footer, 0)  # metaindex handle (unused)
    _, i = _varint(footer, i)
    index_off, i = _varint(footer, i)
    index_size, i = _varint(footer, i)
    shards: dict[int, bytes] = {}
    out: dict[str, np.ndarray] = {}
    for _, handle in _block(data, index_off, index_size):
        off, j = _varint(handle, 0)
        size, _ = _varint(handle, j)
        for key, value in _block(data, off, size):
            if not key:  # the bundle header
                continue
            f = dict.fromkeys((1, 3, 4, 5), 0)
            shape: list[int] = []
            for num, v in _fields(value):
                if num == 2:
                    shape = [dict(_fields(d)).get(1, 0) for n, d in _fields(v) if n == 2]
                elif num == 7:
                    raise UserError(f"sliced variable {key.decode()!r} in checkpoint: not supported")
                else:
                    f[num] = v
            dtype = _DTYPES.get(f[1])
            if dtype is None:
                raise UserError(f"variable {key.decode()!r} has unsupported TensorFlow dtype {f[1]}")
            shard = f[3]
            if shard not in shards:
                matches = sorted(glob.glob(glob.escape(prefix) + f".data-{shard:05d}-of-*"))
                if not matches:
                    raise UserError(f"checkpoint data shard {shard} for {prefix} is missing")
                shards[shard] = Path(matches[0]).read_bytes()
            raw = shards[shard][f[4] : f[4] + f[5]]
            count = int(np.prod(shape)) if shape else 1
            if len(raw) != count * np.dtype(dtype).itemsize:
                raise UserError(f"variable {key.decode()!r}: {len(raw)} bytes for shape {shape}")
            out[key.decode()] = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape).copy()
    return out
