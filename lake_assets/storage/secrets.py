"""Secrets by name: zip passwords, the HMAC key, webhook URLs and PagerDuty routing keys.

A secret `NAME` is read from the environment variable `LAKE_SECRET_NAME`, else from the file
named by `LAKE_SECRETS_FILE` (lines of `NAME=value`; `#` starts a comment). Values never appear
in metadata, logs or errors.
"""

from __future__ import annotations

import os
from pathlib import Path

from lake_assets.errors import SecretNotFoundError

ENV_PREFIX = "LAKE_SECRET_"
FILE_VARIABLE = "LAKE_SECRETS_FILE"


def read_secrets_file(path: Path) -> dict[str, str]:
    """Parse a secrets file of `NAME=value` lines; returns name -> value."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise SecretNotFoundError(f"{path}:{number}: expected NAME=value")
        values[name.strip()] = value.strip()
    return values


def get_secret(name: str, *, environ: dict[str, str] | None = None) -> str:
    """The value of secret `name`.

    Raises SecretNotFoundError naming the secret and where it was looked for (never its value).
    """
    env = os.environ if environ is None else environ
    value = env.get(f"{ENV_PREFIX}{name}")
    if value is not None:
        return value
    file = env.get(FILE_VARIABLE)
    if file:
        path = Path(file)
        if path.is_file():
            found = read_secrets_file(path).get(name)
            if found is not None:
                return found
    fallback = f" or {file}" if file else f" (and ${FILE_VARIABLE} is unset)"
    where = f"${ENV_PREFIX}{name}{fallback}"
    raise SecretNotFoundError(f"secret {name} is not set: looked in {where}")
