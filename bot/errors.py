"""Errors the CLI turns into exit codes.

`BadInput` is the user's fault (exit 2): it says what is wrong and where, in one paragraph,
so the CLI never needs a traceback to explain it.
"""

from __future__ import annotations


class BadInput(Exception):
    """Input the bot cannot work with: a malformed definition, a missing file, a module that raises."""

    def __init__(self, what: str, where: str | None = None, hint: str | None = None):
        self.what, self.where, self.hint = what, where, hint
        super().__init__(self.paragraph())

    def paragraph(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.hint:
            text += f" ({self.hint})"
        return text
