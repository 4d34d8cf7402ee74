"""The access policy compiled to Trino's file-based access control (`rules.json`).

The same `Policy` decides: a table rule per user and granted table (SELECT only), hidden
columns as `allow: false`, masked ones as a `mask` expression, tenant rows as a `filter` on
every facility column present. A table the policy refuses has no rule, and Trino denies what
no rule allows. The service user that registers tables gets ownership of the lake catalog.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlglot import exp

from lake_assets.catalog.policy import Policy, layer_of
from lake_assets.errors import AccessDeniedError

Columns = Mapping[str, Sequence[tuple[str, bool]]]  # table -> (column, is_text)


def trino_rules(policy: Policy, columns: Columns, *, catalog: str = "lake",
                service_user: str = "lakehouse") -> dict[str, list[dict[str, object]]]:
    """Trino file-based access control rules for every user of `policy` over the tables of
    `columns` (SQL name -> its columns, each with whether it is text)."""
    service = f"^{re.escape(service_user)}$"
    rules: dict[str, list[dict[str, object]]] = {
        "catalogs": [{"user": service, "catalog": catalog, "allow": "all"}],
        "schemas": [{"user": service, "catalog": catalog, "owner": True}],
        "tables": [{"user": service, "catalog": catalog,
                    "privileges": ["SELECT", "INSERT", "DELETE", "UPDATE", "OWNERSHIP"]}],
        "procedures": [{"user": service, "catalog": catalog, "schema": "system",
                        "privileges": ["EXECUTE"]}],
    }
    for user in policy.users():
        principal = policy.principal(user)
        pattern = f"^{re.escape(user)}$"
        readable = [t for t in policy.readable(principal) if t in columns]
        rules["catalogs"].append({"user": pattern, "catalog": catalog, "allow": "read-only"})
        for layer in sorted({layer_of(t) for t in readable}):
            rules["schemas"].append({"user": pattern, "catalog": catalog, "schema": layer,
                                     "owner": False})
        for name in readable:
            rule = _table_rule(policy, principal, name, columns[name], service_user)
            if rule is not None:
                rules["tables"].append({"user": pattern, "catalog": catalog} | rule)
    return rules


def _table_rule(policy: Policy, principal: object, name: str,
                columns: Sequence[tuple[str, bool]],
                service_user: str) -> dict[str, object] | None:
    table_policy = policy.table(principal, name)  # type: ignore[arg-type]
    names = [c for c, _ in columns]
    try:
        row_filter = table_policy.row_filter(names)
    except AccessDeniedError:
        return None  # a tenant and a table without a facility column: no rule, so denied
    text = dict(columns)
    rule: dict[str, object] = {"schema": layer_of(name), "table": name.split(".", 1)[1],
                               "privileges": ["SELECT"]}
    column_rules = []
    for column in names:
        action = table_policy.action(column)
        if action == "hide":
            column_rules.append({"name": column, "allow": False})
        elif action == "mask":
            column_rules.append({"name": column, "mask": "'***'" if text[column] else "NULL",
                                 "mask_environment": {"user": service_user}})
    if column_rules:
        rule["columns"] = column_rules
    if row_filter:
        rule["filter"] = exp.and_(*(
            exp.column(column, quoted=True).isin(*(exp.Literal.string(f) for f in facilities))
            for column, facilities in row_filter)).sql("trino")
        # The filter reads facility columns the user may not see: it runs as the service user.
        rule["filter_environment"] = {"user": service_user}
    return rule
