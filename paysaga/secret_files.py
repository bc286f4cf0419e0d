"""The `_FILE` convention: `PAYSAGA_X_FILE=/path` gives setting X the content of that file.

Kubernetes and Docker mount secrets as files; a variable naming the file keeps the secret out of
the process environment (and out of `kubectl describe`). One trailing newline is dropped, as
`echo` and most editors add one. A setting given both ways is refused: nobody should have to guess
which one is in force.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic_settings.sources import EnvSettingsSource

PREFIX = "PAYSAGA_"
SUFFIX = "_FILE"


class SecretFileError(ValueError):
    """A `PAYSAGA_X_FILE` variable names a file that cannot be read, or X is also set."""


def secret_file_values(environ: Mapping[str, str]) -> dict[str, str]:
    """Setting variable (lower case, prefixed) -> the content of the file its `_FILE` names."""
    values: dict[str, str] = {}
    for name, path in environ.items():
        upper = name.upper()
        if not (upper.startswith(PREFIX) and upper.endswith(SUFFIX)) or not path:
            continue
        target = upper.removesuffix(SUFFIX)
        if target in environ:
            raise SecretFileError(f"{target} and {name} are both set: keep one")
        try:
            content = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise SecretFileError(f"{name}: cannot read {path} ({exc.strerror})") from exc
        values[target.lower()] = content.removesuffix("\n")
    return values


class SecretFilesSource(EnvSettingsSource):
    """The settings of the `PAYSAGA_X_FILE` variables, parsed as the variables themselves are."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return dict(secret_file_values(os.environ))
