"""JSON results on disk: values made JSON-safe (numpy scalars and arrays, non-finite floats as null) and files
written atomically, so a reader never sees half a result."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import UserError


def jsonable(x: Any) -> Any:
    """``x`` with numpy values as Python ones, dict keys as strings and NaN/inf as None (JSON has no NaN)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def write_json_atomic(path: Path, obj: Any) -> None:
    """Write JSON via a temporary file, fsync and rename, so readers never see a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, sort_keys=False, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path, what: str = "", hint: str = "") -> Any:
    """The JSON document at ``path``; a file that is not UTF-8 or not JSON is one line naming it (``UserError``).

    ``what`` names the file's role ("baseline file"), ``hint`` says how to get a good one back.
    """
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    tail = f": {hint}" if hint else ""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise UserError(f"{label} is not UTF-8 text (byte {e.start} cannot be decoded){tail}") from e
    except json.JSONDecodeError as e:
        raise UserError(f"{label} is not valid JSON ({e.msg} at line {e.lineno}){tail}") from e


def read_json_object(path: Path, what: str = "", hint: str = "") -> dict[str, Any]:
    """``read_json`` for files that must hold one JSON object (a mapping), as every coverbench result file does."""
    doc = read_json(path, what, hint)
    if not isinstance(doc, dict):
        label = f"{what} {path}" if what else str(path)
        kind = type(doc).__name__ if doc is not None else "null"
        raise UserError(f"{label} holds a JSON {kind}, not an object{': ' + hint if hint else ''}")
    return doc


def read_json_mapping(path: Path) -> dict[str, Any] | None:
    """The JSON object at ``path``, or None when it is missing, unreadable or not an object: for readers that show
    what there is (a report, a staleness check) and never fail for a part that is not there."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return doc if isinstance(doc, dict) else None
