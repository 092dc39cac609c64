#!/usr/bin/env python3
"""make_fuzz_corpus.py: writes the seed corpus of the safetensors fuzz target.

Output: tests/fuzz/corpus/fuzz_safetensors/*.safetensors (small files, deterministic: same bytes on
every run). Valid files cover several dtypes, metadata, rank-0 and empty tensors, an unpadded header
(unaligned data) and scrambled header order; malformed files hit the main rejection rules of
docs/safetensors.md. Python 3 standard library only.
Usage: python3 scripts/make_fuzz_corpus.py [OUT_DIR]
"""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "tests", "fuzz", "corpus", "fuzz_safetensors")

BITS = {"BOOL": 8, "U8": 8, "I8": 8, "I16": 16, "U16": 16, "I32": 32, "U32": 32, "I64": 64, "U64": 64,
        "F16": 16, "BF16": 16, "F32": 32, "F64": 64, "F8_E4M3": 8, "F8_E5M2": 8, "F4": 4, "C64": 64}


def nbytes(dtype, shape):
    n = 1
    for d in shape:
        n *= d
    return n * BITS[dtype] // 8


def pattern(n, seed):
    """Deterministic bytes."""
    return bytes((seed * 37 + i * 11 + 5) & 0xFF for i in range(n))


def image(header_text, data=b"", pad=True):
    """8-byte little-endian length, header (optionally space-padded so 8+N is a multiple of 8), data."""
    h = header_text.encode("utf-8") if isinstance(header_text, str) else header_text
    if pad:
        h += b" " * ((8 - (8 + len(h)) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def valid(tensors, metadata=None, pad=True, order=None):
    """tensors: list of (name, dtype, shape); data laid out contiguously in list order."""
    hdr, data, off = {}, b"", 0
    if metadata is not None:
        hdr["__metadata__"] = metadata
    entries = []
    for i, (name, dtype, shape) in enumerate(tensors):
        n = nbytes(dtype, shape)
        entries.append((name, {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}))
        data += pattern(n, i)
        off += n
    for k in (order or range(len(entries))):
        hdr[entries[k][0]] = entries[k][1]
    return image(json.dumps(hdr, separators=(",", ":"), ensure_ascii=False), data, pad)


def raw(header_text, data=b""):
    return image(header_text, data, pad=False)


def files():
    e = '"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}'
    return {
        # valid
        "ok_f32_2x3.safetensors": valid([("w", "F32", [2, 3])]),
        "ok_lora_meta.safetensors": valid(
            [("lora_unet_down.lora_down.weight", "F16", [4, 8]),
             ("lora_unet_down.lora_up.weight", "F16", [8, 4]),
             ("lora_unet_down.alpha", "F32", [])],
            metadata={"ss_network_dim": "4", "ss_network_alpha": "4.0", "format": "pt"}),
        "ok_mixed_dtypes.safetensors": valid(
            [("a", "BF16", [3]), ("b", "I8", [5]), ("c", "U8", [1]), ("d", "I64", [2]),
             ("e", "F8_E4M3", [2, 2]), ("f", "F4", [4]), ("g", "BOOL", [3]), ("h", "F64", [1])]),
        "ok_rank0_and_empty.safetensors": valid(
            [("z", "F16", [0]), ("s", "F32", []), ("e", "U8", [3, 0]), ("t", "U16", [2])]),
        "ok_unpadded_unaligned.safetensors": valid([("x", "F16", [3]), ("y", "F32", [2])], pad=False),
        "ok_scrambled_order.safetensors": valid(
            [("p", "U8", [2]), ("q", "I16", [2]), ("r", "U32", [1])], order=[2, 0, 1]),
        "ok_empty_header.safetensors": image("{}"),
        "ok_metadata_only.safetensors": valid([], metadata={"k\u00e9y": "v\"al\\ue\n", "e": ""}),
        "ok_unicode_name.safetensors": valid([("caf\u00e9.\u2713", "C64", [1])]),
        # malformed
        "bad_too_small.safetensors": b"\x10\x00\x00",
        "bad_header_past_eof.safetensors": struct.pack("<Q", 64) + b"{}",
        "bad_not_json.safetensors": raw('{"w":{"dtype":"F32",'),
        "bad_not_object.safetensors": raw("[1,2,3]"),
        "bad_metadata_value.safetensors": raw('{"__metadata__":{"k":1}}'),
        "bad_unknown_dtype.safetensors": raw('{"w":{"dtype":"F12","shape":[1],"data_offsets":[0,2]}}', b"\0\0"),
        "bad_size_mismatch.safetensors": raw('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', b"\0" * 4),
        "bad_gap.safetensors": raw('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},'
                                   '"b":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}}', b"abc"),
        "bad_overlap.safetensors": raw('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
                                       '"b":{"dtype":"U8","shape":[2],"data_offsets":[1,3]}}', b"abc"),
        "bad_trailing.safetensors": raw("{" + e + "}", b"\0" * 8 + b"extra_bogus_data_for_polyglot_file"),
        "bad_duplicate.safetensors": raw("{" + e + "," + e + "}", b"\0" * 8),
        "bad_nul_escape.safetensors": raw('{"w\\u0000x":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
        "bad_utf8.safetensors": raw(b'{"\xc0\xaf":{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}'),
        "bad_f4_odd.safetensors": raw('{"w":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}', b"\0\0"),
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_OUT
    os.makedirs(out, exist_ok=True)
    for name, blob in sorted(files().items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
    print(f"wrote {len(files())} files to {out}")


if __name__ == "__main__":
    main()
