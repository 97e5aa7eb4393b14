"""Why an input was not taken: a short code (the summary groups by it) and a human detail."""

from __future__ import annotations


class Reject(Exception):
    """Raised by the decoders for inputs that must be skipped; ``str`` gives "code: detail"."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        return f"{self.code}: {self.detail}"


def nonempty_size(path, what: str) -> int:  # noqa: ANN001 - a path-like
    """The file's size in bytes; Reject when it cannot be read ("unreadable-<what>") or is empty."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise Reject(f"unreadable-{what}", f"{e.strerror or e}") from e
    if size == 0:
        raise Reject("empty-file", f"{'preview' if what == 'audio' else what} has 0 bytes")
    return size
