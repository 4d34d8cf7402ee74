"""What PostgreSQL clients send besides queries, answered without the engine, and the catalog
SQL of psql and BI tools rewritten to what DuckDB's `pg_catalog` understands.

Statements are answered as PostgreSQL would for a read-only, autocommit server: transaction
control and client session settings (`SET extra_float_digits`, `SET application_name`) succeed
and change nothing. Any other SET reaches the engine, which refuses it.
"""

from __future__ import annotations

import re

SERVER_VERSION = "16.0 (lakehouse)"
# Session settings BI drivers send on connect; accepted and ignored.
_CLIENT_SETTINGS = {
    "application_name", "client_encoding", "datestyle", "extra_float_digits", "intervalstyle",
    "search_path", "statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout",
    "timezone", "time zone", "bytea_output", "standard_conforming_strings", "client_min_messages",
    "session characteristics", "transaction", "names", "default_transaction_read_only",
}
_TRANSACTION = re.compile(
    r"^\s*(begin|start\s+transaction|commit|end|rollback|abort|discard\s+all|deallocate|"
    r"savepoint|release|close\s+all|unlisten)\b", re.IGNORECASE)
_SET = re.compile(r"^\s*(?:set|reset)\s+(?:session\s+|local\s+)?([a-z_ ]+?)\s*(?:=|\bto\b|$|;)",
                  re.IGNORECASE)
_SHOW = re.compile(r"^\s*show\s+([a-z_ ]+?)\s*;?\s*$", re.IGNORECASE)
_SHOW_VALUES = {
    "transaction isolation level": "read committed", "standard_conforming_strings": "on",
    "server_version": SERVER_VERSION, "client_encoding": "UTF8", "datestyle": "ISO, MDY",
    "timezone": "UTC", "search_path": "silver, gold", "max_identifier_length": "63",
    "integer_datetimes": "on", "server_encoding": "UTF8", "is_superuser": "off",
}
_REWRITES = (
    (re.compile(r"OPERATOR\(pg_catalog\.(~|!~|~\*|!~\*|=|<>)\)", re.IGNORECASE), r"\1"),
    (re.compile(r"\s+COLLATE\s+pg_catalog\.\"?default\"?", re.IGNORECASE), ""),
    (re.compile(r"pg_catalog\.(pg_get_userbyid|pg_encoding_to_char|obj_description|"
                r"shobj_description|pg_get_function_identity_arguments)\(", re.IGNORECASE),
     r"\1("),
    # A catalog's oid by name ('pg_class'::regclass): DuckDB has none; 0 matches no row.
    (re.compile(r"'[^']*'::(?:pg_catalog\.)?(?:regtype|regclass|regproc)\b", re.IGNORECASE),
     "0"),
    (re.compile(r"::pg_catalog\.(regtype|regclass|regproc|oid)\b", re.IGNORECASE), "::BIGINT"),
    (re.compile(r"::pg_catalog\.(\w+)", re.IGNORECASE), r"::\1"),
    (re.compile(r"::(regtype|regclass|regproc)\b", re.IGNORECASE), "::BIGINT"),
    (re.compile(r"pg_catalog\.version\(\)", re.IGNORECASE), f"'PostgreSQL {SERVER_VERSION}'"),
    (re.compile(r"\bversion\(\)", re.IGNORECASE), f"'PostgreSQL {SERVER_VERSION}'"),
)


def command_tag(sql: str) -> str | None:
    """The command tag to answer `sql` with when it needs no engine, else None."""
    text = sql.strip().rstrip(";").strip()
    if not text:
        return ""
    match = _TRANSACTION.match(text)
    if match:
        word = match.group(1).split()[0].upper()
        return {"END": "COMMIT", "ABORT": "ROLLBACK", "START": "START TRANSACTION",
                "CLOSE": "CLOSE CURSOR"}.get(word, "DISCARD ALL" if word == "DISCARD" else word)
    match = _SET.match(text)
    if match and match.group(1).strip().lower() in _CLIENT_SETTINGS:
        return "RESET" if text.lower().startswith("reset") else "SET"
    return None


def show_value(sql: str) -> tuple[str, str] | None:
    """(setting, value) for a `SHOW <setting>` clients ask on connect, else None."""
    match = _SHOW.match(sql)
    if not match:
        return None
    name = " ".join(match.group(1).lower().split())
    value = _SHOW_VALUES.get(name)
    return None if value is None else (name.replace(" ", "_"), value)


def rewrite(sql: str) -> str:
    """`sql` with PostgreSQL catalog idioms DuckDB lacks replaced by equivalents."""
    lowered = sql.lower()
    if "pg_catalog" not in lowered and "version()" not in lowered and "::reg" not in lowered:
        return sql
    for pattern, replacement in _REWRITES:
        sql = pattern.sub(replacement, sql)
    return sql
