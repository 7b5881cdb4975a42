"""SQLAlchemy statements compiled once into asyncpg's SQL (`$1`, `$2`...).

The repository builds its statements with SQLAlchemy; the hot paths run the same statements
without building or compiling them per request.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

_DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Prepared:
    """One statement's SQL and how to order its parameters."""

    sql: str
    names: tuple[str, ...]
    constants: dict[str, Any]

    @classmethod
    def of(cls, statement: Executable) -> Prepared:
        """`statement` (with `bindparam`s for what varies), compiled for asyncpg."""
        compiled = statement.compile(  # type: ignore[attr-defined]
            dialect=_DIALECT, compile_kwargs={"render_postcompile": True}
        )
        assert isinstance(compiled, SQLCompiler)
        names = tuple(compiled.positiontup or ())
        constants = {
            name: value.value if isinstance(value, enum.Enum) else value
            for name, value in compiled.params.items()
            if value is not None
        }
        return cls(str(compiled), names, constants)

    def args(self, **values: Any) -> list[Any]:
        """The positional arguments, from the varying values by bind name."""
        return [values[n] if n in values else self.constants[n] for n in self.names]
