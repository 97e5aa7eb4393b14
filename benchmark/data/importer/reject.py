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
