"""A prepared dataset's content identity, recorded in everything made from it and checked where it is reused.

``bench data synth/import --force`` replaces a dataset under the same name, so a name alone would let the
embeddings, checkpoints, evaluations and power rows of the old content pass for the new. Each of them records
``dataset_fingerprint``: a hash of the manifest's file hashes (not its creation time or package versions), so
the same bytes give the same fingerprint and any changed file a new one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from core.errors import UserError

KEY = "dataset_fingerprint"


def manifest_hash(manifest: dict[str, Any]) -> str:
    """Content identity of a prepared dataset from its manifest: its files' hashes (32 hex digits)."""
    content = manifest.get("files") or {k: v for k, v in manifest.items() if k not in ("created", "versions")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def is_stale(recorded: Any, current: str) -> bool:
    """Whether an artifact that recorded ``recorded`` was made from other content than ``current``.

    Artifacts written before fingerprints were recorded hold none and are not judged stale.
    """
    return isinstance(recorded, str) and bool(recorded) and recorded != current


def check_fingerprint(recorded: Any, current: str, artifact: str, dataset: str, fix: str,
                      made: str = "made from") -> None:
    """One line when ``artifact`` was ``made`` ("made from", "registered for") an earlier version of ``dataset``
    than the one there now."""
    if is_stale(recorded, current):
        raise UserError(
            f"{artifact} was {made} an earlier version of dataset {dataset!r} (replaced since, content "
            f"{recorded[:8]} then, {current[:8]} now): {fix}"
        )
