"""Column shapes the payments tables share: a creation time set by PostgreSQL, money in BIGINT."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    text,
)
from sqlmodel import Field


def now_column() -> Any:
    return Column(DateTime(timezone=True), nullable=False, server_default=text("now()"))


def money(*, default: int | None = None) -> Any:
    server_default = None if default is None else str(default)
    return Field(
        default=default,
        sa_column=Column(BigInteger, nullable=False, server_default=server_default),
    )
