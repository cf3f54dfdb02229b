"""The one exception type for mistakes a user can make.

The CLI prints it as a single line and exits with code 2; anything else escaping is a bug and may show
a traceback. The message always names where the problem is (file, line, field) so it can be fixed
without reading source code.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Bad input: a file, field or value the user supplied is wrong."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "")
        if self.field:
            where = f"{where}: {self.field}" if where else self.field
        return f"{where}: {self.message}" if where else self.message
