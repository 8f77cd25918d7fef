"""Strict YAML with line numbers, and validation errors as `file:line field: message` (one line, exit code 2).

PyYAML forgets where a value was written; `load_yaml` keeps the line of every key and value so that each error a
suite, recipe or tolerance file causes can point at its line, and rejects keys written twice in one mapping.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import yaml
from pydantic import BaseModel, ValidationError

from robustcollapse.errors import UserError

Loc = tuple[Any, ...]


class ConfigError(UserError):
    """`file:line field: message` — one line, exit code 2."""


class _DuplicateKey(Exception):
    def __init__(self, loc: Loc, line: int, first: int) -> None:
        super().__init__(loc, line, first)
        self.loc, self.line, self.first = loc, line, first


def _reject_duplicates(node: yaml.MappingNode, loc: Loc) -> None:
    """A key written twice in one mapping is an error (YAML says keys are unique; PyYAML keeps the last)."""
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else id(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise _DuplicateKey((*loc, key), line, seen[key])
        seen[key] = line


def _construct(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        _reject_duplicates(node, loc)
        yaml.SafeLoader("").flatten_mapping(node)  # resolve `<<: *anchor` merge keys, explicit keys win
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            out[key] = _construct(value_node, (*loc, key), lines)
            lines[(*loc, key)] = key_node.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, (*loc, i), lines) for i, v in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.ScalarNode) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


MAX_YAML_BYTES = 1 << 20  # 1 MiB: a suite is a few KB; PyYAML needs ~100x a file's size in memory and time
MAX_YAML_NODES = 100_000  # values after alias expansion ("billion laughs" expands 90 aliases to 10^9 values)


def _expanded_size(root: yaml.Node) -> int:
    """How many values the node tree holds once every alias is expanded, computed on the shared graph (each node
    once, memoised, no recursion), so a file whose aliases expand exponentially is measured, never expanded."""
    size: dict[int, int] = {}
    entered: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        if not children_done and id(node) in entered:
            return MAX_YAML_NODES + 1  # an alias inside its own anchor: infinite once expanded
        entered.add(id(node))
        children = (
            [n for pair in node.value for n in pair]
            if isinstance(node, yaml.MappingNode)
            else node.value
            if isinstance(node, yaml.SequenceNode)
            else []
        )
        if children_done:
            size[id(node)] = min(1 + sum(size.get(id(c), 0) for c in children), MAX_YAML_NODES + 1)
        else:
            stack.append((node, True))
            stack.extend((c, False) for c in children if id(c) not in size)
    return size[id(root)]


def load_yaml(path: Path) -> tuple[dict[str, Any], dict[Loc, int]]:
    """Parse a YAML mapping, keeping the line of every key and value."""
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, not a YAML file")
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: not a regular file (a FIFO, socket or device), not a YAML file")
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    lines: dict[Loc, int] = {}
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes; a suite or recipe is at most {MAX_YAML_BYTES}")
        node = yaml.compose(path.read_bytes().decode("utf-8"), Loader=yaml.SafeLoader)
        if node is not None and _expanded_size(node) > MAX_YAML_NODES:
            raise ConfigError(
                f"{path}: expands to more than {MAX_YAML_NODES} values through its aliases (*name); write it out"
            )
        data = _construct(node, (), lines) if node is not None else None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable ({exc.strerror or exc})") from None
    except _DuplicateKey as dup:
        raise ConfigError(
            f"{path}:{dup.line} {_field_name(dup.loc)}: duplicate key (first given on line {dup.first})"
        ) from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a suite, recipe or tolerances file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # a reader error spans lines
        raise ConfigError(f"{where} invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1 expected a mapping of fields at the top level")
    return data, lines


def _field_name(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<top level>"


def _message(err: dict[str, Any], model: type[BaseModel], loc: Loc) -> str:
    if err["type"] == "extra_forbidden":
        owner: Any = model
        for part in loc[:-1]:
            if isinstance(part, int) or owner is None:
                continue
            field = owner.model_fields.get(part) if hasattr(owner, "model_fields") else None
            ann = field.annotation if field else None
            owner = next(
                (a for a in getattr(ann, "__args__", (ann,)) if isinstance(a, type) and issubclass(a, BaseModel)),
                None,
            )
        allowed = ", ".join(owner.model_fields) if owner else "?"
        return f"unknown field; allowed: {allowed}"
    return str(err["msg"]).removeprefix("Value error, ")


def validate(model: type[BaseModel], data: Any, path: Path, lines: dict[Loc, int], prefix: Loc = ()) -> Any:
    """model.model_validate(data), with the first error turned into `file:line field: message`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err = errors[0]
        loc = (*prefix, *err["loc"])
        line_loc = loc
        while line_loc and line_loc not in lines:
            line_loc = line_loc[:-1]
        line = lines.get(line_loc, 1)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}:{line} {_field_name(loc)}: {_message(err, model, err['loc'])}{more}") from None


def fail(path: Path, lines: dict[Loc, int], loc: Loc, message: str) -> NoReturn:
    """Raise `file:line field: message` for the field at `loc` (the line of its nearest written ancestor)."""
    probe = loc
    while probe and probe not in lines:
        probe = probe[:-1]
    raise ConfigError(f"{path}:{lines.get(probe, 1)} {_field_name(loc)}: {message}")
