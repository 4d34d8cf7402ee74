"""The access policy compiled once: who a user is, which tables they may read, which columns
they see masked or not at all, and which facilities' rows.

Every read path asks the same `Policy`: the PostgreSQL endpoint, `lakehouse sql`,
`query()` / `read_table()`, and the Trino rules compiled from it. Decisions are plain data
(`Principal`, `TablePolicy`); engines turn them into SQL or DataFrame operations.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

from lake_assets.catalog.access import RAW_LAYERS, Access, Role
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.lineage import lake_tables
from lake_assets.errors import AccessDeniedError

Action = str  # "show" | "mask" | "hide"


def governed_tables(catalog: Catalog) -> dict[str, str]:
    """Every table a policy governs: SQL name to table path, quarantine tables included."""
    tables = lake_tables(catalog)
    tables |= {f"quarantine.{f.name}__{t.name}": f"quarantine/{f.name}/{t.name}"
               for f in catalog.feeds for t in f.tables}
    return tables


def layer_of(name: str) -> str:
    """The layer of SQL name `name`: `silver.visits` -> `silver`."""
    return name.split(".", 1)[0]


@dataclass(frozen=True)
class Principal:
    """A user acting on the lake: name, role, and the facilities it is limited to (None: all)."""

    user: str
    role: str
    tenant: str | None = None
    facilities: tuple[str, ...] | None = None

    @property
    def shape(self) -> tuple[str, tuple[str, ...] | None]:
        """What decides what the principal sees; principals of one shape see the same data."""
        return self.role, self.facilities


@dataclass(frozen=True)
class TablePolicy:
    """What `principal` sees of `table`: each column shown, masked or hidden, and the rows."""

    table: str
    principal: Principal
    rules: tuple[tuple[str, Action], ...]  # (column glob, action), first match wins
    facility_columns: tuple[str, ...]

    def action(self, column: str) -> Action:
        """`show`, `mask` or `hide` for `column`."""
        return next((a for glob, a in self.rules if fnmatch.fnmatchcase(column, glob)), "show")

    def columns(self, names: Sequence[str]) -> list[tuple[str, Action]]:
        """The columns of `names` the principal sees, in order, each with `show` or `mask`."""
        return [(n, a) for n in names if (a := self.action(n)) != "hide"]

    def row_filter(self, names: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
        """(column, facilities) pairs every row must satisfy; [] when all rows are visible.

        Raises AccessDeniedError for a tenant principal and a table without a facility column.
        """
        facilities = self.principal.facilities
        if facilities is None:
            return []
        present = [c for c in self.facility_columns if c in names]
        if not present:
            raise AccessDeniedError(
                f"user {self.principal.user} (role {self.principal.role}) sees only the rows of "
                f"tenant {self.principal.tenant}, and {self.table} has no facility column "
                f"({', '.join(self.facility_columns)}) to filter them by")
        return [(column, facilities) for column in present]


class Policy:
    """The compiled access policy of a catalog."""

    def __init__(self, access: Access | None, tables: Iterable[str]) -> None:
        self.access = access
        self.tables = tuple(sorted(tables))

    @classmethod
    def of(cls, catalog: Catalog) -> Policy:
        """The policy of `catalog`'s `access.yaml` over its governed tables (none: no users)."""
        return cls(catalog.access, governed_tables(catalog))

    @cached_property
    def _users(self) -> Mapping[str, Principal]:
        if self.access is None:
            return {}
        found = {}
        for name, user in self.access.users.items():
            role = self.access.roles[user.role]
            tenant = self.access.tenants.get(user.tenant) if user.tenant else None
            facilities = tuple(sorted(tenant.facilities)) if tenant and role.rows == "tenant" \
                else None
            found[name] = Principal(name, user.role, user.tenant, facilities)
        return found

    def principal(self, user: str) -> Principal:
        """The principal named `user`; raises AccessDeniedError for a user not in access.yaml."""
        found = self._users.get(user)
        if found is None:
            raise AccessDeniedError(f"unknown user {user!r}: users are declared in access.yaml")
        return found

    def password_secret(self, user: str) -> str | None:
        """The secret holding `user`'s password, or None when the user cannot log in."""
        return self.access.users[user].password_secret if self.access else None

    def users(self) -> list[str]:
        """Every user name."""
        return sorted(self._users)

    def readable(self, principal: Principal) -> list[str]:
        """The SQL names of every table `principal` may read."""
        return [t for t in self.tables if self._granted(self._role(principal), t)]

    def table(self, principal: Principal, name: str) -> TablePolicy:
        """The policy of table `name` for `principal`.

        Raises AccessDeniedError naming the user, role and table when it is not granted.
        """
        role = self._role(principal)
        if name not in self.tables or not self._granted(role, name):
            raw = " (raw PHI: bronze and quarantine need a role with raw: true)" \
                if layer_of(name) in RAW_LAYERS and not role.raw else ""
            raise AccessDeniedError(f"permission denied: user {principal.user} (role "
                                    f"{principal.role}) may not read {name}{raw}")
        rules = tuple((r.column, r.action) for r in role.columns
                      if fnmatch.fnmatchcase(name, r.table))
        assert self.access is not None  # a principal exists only with an access policy
        return TablePolicy(name, principal, rules, self.access.facility_columns)

    def _role(self, principal: Principal) -> Role:
        assert self.access is not None
        return self.access.roles[principal.role]

    @staticmethod
    def _granted(role: Role, name: str) -> bool:
        if layer_of(name) in RAW_LAYERS and not role.raw:
            return False
        return any(fnmatch.fnmatchcase(name, glob) for glob in role.grants)
