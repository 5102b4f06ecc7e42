"""Deterministic UUIDs (version 4 layout) for the Synthea and FHIR exports, vectorised.

A UUID is a hash (splitmix64) of the seed, a name space (what is identified) and an
integer id, so the same seed gives the same UUIDs and different things never share one.
"""

from __future__ import annotations

import hashlib
import uuid as uuidlib
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

Arr = npt.NDArray[Any]
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
DASHES = (8, 13, 18, 23)

# name spaces
PATIENT, ENCOUNTER, ORGANIZATION, PROVIDER, PAYER, MEMBER, RESOURCE = range(1, 8)


def _mix(x: Arr) -> Arr:
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        result: Arr = z ^ (z >> np.uint64(31))
    return result


def uuid_strings(seed: int, space: int, ids: Arr) -> Arr:
    """UUIDs as a numpy array of ``S36`` byte strings."""
    ids = np.asarray(ids, dtype=np.int64).astype(np.uint64)
    base = _mix(np.array([seed], dtype=np.uint64) ^ _mix(np.array([space], dtype=np.uint64)))
    hi = _mix(ids ^ base[0])
    lo = _mix(hi ^ np.uint64(0x5851F42D4C957F2D))
    hi = (hi & ~np.uint64(0xF000)) | np.uint64(0x4000)  # version 4
    lo = (lo & ~np.uint64(0xC000000000000000)) | np.uint64(0x8000000000000000)  # RFC variant
    raw = np.stack([hi, lo], axis=1).astype(">u8").view(np.uint8).reshape(len(ids), 16)
    nibbles = np.empty((len(ids), 32), dtype=np.uint8)
    nibbles[:, 0::2] = raw >> 4
    nibbles[:, 1::2] = raw & 15
    chars = HEX[nibbles]
    out = np.full((len(ids), 36), ord("-"), dtype=np.uint8)
    positions = [i for i in range(36) if i not in DASHES]
    out[:, positions] = chars
    result: Arr = np.ascontiguousarray(out).view("S36").ravel()
    return result


def uuids(seed: int, space: int, ids: Arr) -> pa.Array[Any]:
    """UUIDs as an Arrow string array."""
    raw = uuid_strings(seed, space, ids)
    return pa.array(raw, pa.binary(36)).cast(pa.string())


def uuid_list(seed: int, space: int, ids: Arr) -> list[str]:
    return [u.decode() for u in uuid_strings(seed, space, ids).tolist()]


def uuid_one(seed: int, space: int, key: int) -> str:
    """One UUID from a hash of (seed, space, key), for code that makes ids one by one."""
    digest = bytearray(hashlib.blake2b(f"{seed}:{space}:{key}".encode(), digest_size=16).digest())
    digest[6] = (digest[6] & 0x0F) | 0x40  # version 4
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC variant
    return str(uuidlib.UUID(bytes=bytes(digest)))
