"""The access policy of `metadata/access.yaml`: roles, tenants and users, as frozen models.

    roles:
      analyst: {grants: ["silver.*", "gold.*"], columns: [{table: "silver.*", column: mrn,
                                                            action: mask}]}
      tenant:  {grants: ["gold.*", "silver.visits"], rows: tenant}
      engineer: {grants: ["*"], raw: true}
    tenants:  {acme: {facilities: [FAC00001, FAC00002]}}
    users:    {ana: {role: analyst, password_secret: SERVE_PASSWORD_ANA},
               acme_portal: {role: tenant, tenant: acme, password_secret: SERVE_PASSWORD_ACME}}

Grants are globs over SQL names (`silver.visits`, `gold.*`, `bronze.adt_events__*`). Raw layers
(bronze, quarantine) are matched only for a role with `raw: true`. Passwords are named secrets,
never values in YAML. `catalog.policy` compiles these models into per-table decisions.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from lake_assets.catalog.models import Model, Name

SecretName = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]
ColumnName = Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]*$", max_length=63)]
UserName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_.\-]*$", max_length=63)]
Glob = Annotated[str, Field(pattern=r"^[a-z0-9_*?\[\].\-]+$", min_length=1)]
RAW_LAYERS = ("bronze", "quarantine")
DEFAULT_FACILITY_COLUMNS = ("_facility_id", "facility_code", "facility_id")


class ColumnRule(Model):
    """Hide a column (it is not there) or mask it (`***` for text, NULL otherwise)."""

    table: Glob = Field(description="glob over SQL names, e.g. silver.* or gold.daily_census")
    column: Glob
    action: Literal["hide", "mask"]


class Role(Model):
    """What a role may read: table grants, column rules and which rows."""

    description: str = ""
    grants: tuple[Glob, ...] = Field(min_length=1)
    raw: bool = Field(default=False, description="may read bronze and quarantine (raw PHI)")
    columns: tuple[ColumnRule, ...] = ()
    rows: Literal["all", "tenant"] = Field(
        default="all", description="tenant: only the rows of the user's tenant's facilities")


class Tenant(Model):
    """A customer and the facilities whose rows it may see."""

    description: str = ""
    facilities: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = Field(
        min_length=1)


class User(Model):
    """A principal: its role, its tenant (for tenant roles) and its password secret."""

    role: Name
    tenant: Name | None = None
    password_secret: SecretName | None = Field(
        default=None, description="secret holding the password; none: no network login")


class Access(Model):
    """The contents of `metadata/access.yaml`."""

    facility_columns: tuple[ColumnName, ...] = Field(
        default=DEFAULT_FACILITY_COLUMNS, min_length=1,
        description="columns naming a row's facility; a tenant filter applies to each present")
    roles: dict[Name, Role] = Field(min_length=1)
    tenants: dict[Name, Tenant] = Field(default_factory=dict)
    users: dict[UserName, User] = Field(min_length=1)

    @model_validator(mode="after")
    def _references(self) -> Access:
        problems = []
        for name, user in self.users.items():
            role = self.roles.get(user.role)
            if role is None:
                problems.append(f"users.{name}.role: no role {user.role!r} "
                                f"(roles: {', '.join(sorted(self.roles))})")
                continue
            if role.rows == "tenant" and user.tenant is None:
                problems.append(f"users.{name}.tenant: role {user.role} filters rows by tenant, "
                                "so the user needs a tenant")
            if user.tenant is not None and user.tenant not in self.tenants:
                problems.append(f"users.{name}.tenant: no tenant {user.tenant!r}")
        if problems:
            raise ValueError("; ".join(problems))
        return self
