"""Database failures as toolrun errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError

from toolrun.errors import StoreError


@contextmanager
def store_errors(action: str) -> Iterator[None]:
    """A database failure is a :class:`StoreError` (503 with a message), never a bare 500."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StoreError(f"could not {action}: {type(exc).__name__}") from exc
