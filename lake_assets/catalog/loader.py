"""Load `metadata/` into a validated `Catalog`, collecting every problem with its file and key."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from lake_assets.catalog.access import Access
from lake_assets.catalog.access_rules import access_problems
from lake_assets.catalog.catalog import Catalog
from lake_assets.catalog.models import Feed, Owners, Projection
from lake_assets.catalog.rules import cross_file_problems
from lake_assets.errors import MetadataError, MetadataProblem

M = TypeVar("M", bound=BaseModel)
METADATA_VARIABLE = "LAKE_METADATA"
ACCESS_FILE = "access.yaml"
# The checkout's own metadata/, for a process started outside the project folder.
_PROJECT_METADATA = Path(__file__).resolve().parents[2] / "metadata"


def metadata_root() -> Path:
    """The metadata folder: $LAKE_METADATA, else the project's `metadata/`."""
    return Path(os.environ.get(METADATA_VARIABLE, _PROJECT_METADATA))


# libyaml's parser when PyYAML was built with it: 2-3x faster on thousands of feeds.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _UniqueKeyLoader(_SafeLoader):  # type: ignore[valid-type, misc]
    """A safe loader that rejects duplicate mapping keys instead of keeping the last one."""


def _construct_unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            line = key_node.start_mark.line + 1
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (line {line})", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def read_yaml(path: Path, rel: str) -> tuple[Any, list[MetadataProblem]]:
    """Parse one YAML file; returns the data, or None with the problem that stopped it."""
    try:
        with path.open(encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [MetadataProblem(rel, where, f"invalid YAML: {problem}")]
    except (OSError, UnicodeDecodeError) as exc:
        return None, [MetadataProblem(rel, "", f"cannot read: {exc}")]
    if not isinstance(data, dict):
        return None, [MetadataProblem(rel, "", "expected a mapping at the top level")]
    return data, []


def key_path(loc: tuple[int | str, ...], data: Any) -> str:
    """Render a pydantic error location, naming list items by their `name` when they have one.

    ('tables', 0, 'columns', 2, 'phi') becomes `tables[encounters].columns[mrn].phi`.
    """
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            child = node[item] if isinstance(node, list) and item < len(node) else None
            label = child.get("name") if isinstance(child, dict) else None
            parts.append(f"[{label if isinstance(label, str) else item}]")
            node = child
        else:
            parts.append(f".{item}" if parts else str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def _validate(
    model: type[M], data: Any, rel: str
) -> tuple[M | None, list[MetadataProblem]]:
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = [
            MetadataProblem(rel, key_path(err["loc"], data), _describe(err))
            for err in errors
            if not _echo_of_item_error(err, errors)
        ]
        return None, problems


def _echo_of_item_error(err: Any, errors: list[Any]) -> bool:
    """Pydantic also reports a list as too short when its only items failed; that is noise."""
    loc = err["loc"]
    return err["type"] == "too_short" and any(
        len(other["loc"]) > len(loc) and other["loc"][: len(loc)] == loc for other in errors
    )


def _describe(err: Any) -> str:
    message = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return "unknown key (not part of the metadata schema)"
    if err["type"] == "missing":
        return "required key is missing"
    return message


def _yaml_files(folder: Path) -> Iterator[Path]:
    if folder.is_dir():
        yield from sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml"))


def load_catalog(root: Path | str) -> Catalog:
    """Load and validate every metadata file under `root`.

    Returns the Catalog. Raises MetadataError listing every problem, each naming file and key.
    """
    root = Path(root)
    problems: list[MetadataProblem] = []
    files: dict[str, str] = {}
    if not root.is_dir():
        raise MetadataError([MetadataProblem(str(root), "", "metadata folder does not exist")])

    owners = _load_owners(root, problems, files)
    feeds = _load_many(root, "feeds", Feed, "feed", problems, files)
    projections = _load_many(root, "projections", Projection, "projection", problems, files)
    access = _load_access(root, problems, files)
    # Rules run on whatever loaded; those needing every file (owners, references to other
    # feeds' tables) only when nothing failed, so one broken file is not reported twice.
    complete = not problems
    stand_in = owners or Owners.model_construct(teams={})
    catalog = Catalog(root, tuple(feeds), tuple(projections), stand_in, files, access)
    problems.extend(cross_file_problems(catalog, complete=complete, owners=owners is not None))
    if complete:
        problems.extend(access_problems(catalog))
    if problems:
        raise MetadataError(problems)
    return catalog


def _load_owners(
    root: Path, problems: list[MetadataProblem], files: dict[str, str]
) -> Owners | None:
    path = root / "owners.yaml"
    if not path.is_file():
        problems.append(MetadataProblem("owners.yaml", "", "file is missing"))
        return None
    data, found = read_yaml(path, "owners.yaml")
    problems.extend(found)
    if data is None:
        return None
    owners, found = _validate(Owners, data, "owners.yaml")
    problems.extend(found)
    if owners is not None:
        files.update({f"team:{name}": "owners.yaml" for name in owners.teams})
    return owners


def _load_access(
    root: Path, problems: list[MetadataProblem], files: dict[str, str]
) -> Access | None:
    """`access.yaml`, the read policy; optional (without it nobody may read through the
    governed paths)."""
    path = root / ACCESS_FILE
    if not path.is_file():
        return None
    data, found = read_yaml(path, ACCESS_FILE)
    problems.extend(found)
    if data is None:
        return None
    access, found = _validate(Access, data, ACCESS_FILE)
    problems.extend(found)
    if access is not None:
        files["access"] = ACCESS_FILE
    return access


def _load_many(
    root: Path,
    folder: str,
    model: type[M],
    kind: str,
    problems: list[MetadataProblem],
    files: dict[str, str],
) -> list[M]:
    loaded: list[M] = []
    for path in _yaml_files(root / folder):
        rel = path.relative_to(root).as_posix()
        data, found = read_yaml(path, rel)
        problems.extend(found)
        if data is None:
            continue
        item, found = _validate(model, data, rel)
        problems.extend(found)
        if item is None:
            continue
        key = f"{kind}:{item.name}"
        if key in files:
            problems.append(
                MetadataProblem(
                    rel, "name", f"{kind} {item.name!r} is also declared in {files[key]}"
                )
            )
            continue
        files[key] = rel
        loaded.append(item)
    return loaded
