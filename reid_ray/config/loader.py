"""Loading a job's configuration: the job's defaults (its config class), a YAML profile on top, then ``--set``
overrides on top of that.

The profile is merged into the defaults section by section, key by key: a profile states only what differs, and
a key it leaves out keeps its default even inside a section it states. A value that is no section (a number, a
list, a mapping such as ``segmenter.categories`` or ``embedder.by_category``) is replaced whole. An override sets
one key at its dotted path (``--set embedder.by_category.person.head=ckpt.pt`` changes that one key).

A bad value stops a job before any work with a message naming the field, exit code 2.
"""
from __future__ import annotations

import difflib
import sys
from pathlib import Path
from typing import Any, Callable, Sequence, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from reid_ray.config.base import CONFIG_ERROR_EXIT_CODE, ConfigError
from reid_ray.config.pairs import PairsJobConfig


def _parse_value(text: str) -> Any:
    # YAML parsing gives numbers, booleans, lists ("[1, 5]") and null the way a user types them.
    return yaml.safe_load(text)


def apply_overrides(data: dict, overrides: Sequence[str]) -> dict:
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key.path=value")
        key, value = item.split("=", 1)
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{p}' is not a section")
        node[parts[-1]] = _parse_value(value)
    return data


def _as_section(annotation: Any) -> type[BaseModel] | None:
    """The config model an annotation holds (``X`` or ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((a for a in get_args(annotation) if isinstance(a, type) and issubclass(a, BaseModel)), None)


def _merged(model: type[BaseModel], base: dict, over: dict) -> dict:
    """``over`` on top of ``base`` (both data of ``model``): sections merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        field = model.model_fields.get(key)
        section = _as_section(field.annotation) if field is not None and get_origin(field.annotation) is not dict else None
        if section is not None and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merged(section, out[key], value)
        else:
            out[key] = value
    return out


def _section_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The valid keys of the section at ``loc`` (``("proposal", "calibration")``; ``()``: the top level) of
    ``model``; None when ``loc`` is no section."""
    node: Any = model
    parts = list(loc)
    while parts:
        section = _as_section(node)
        part = parts.pop(0)
        if section is None or part not in section.model_fields:
            return None
        node = section.model_fields[part].annotation
        if get_origin(node) is dict:  # sections by name (embedder.by_category.<category>): the name is any key
            if not parts:
                return None
            parts.pop(0)
            node = get_args(node)[1]
    section = _as_section(node)
    return sorted(section.model_fields) if section is not None else None


def _unknown_key(loc: Sequence[str | int], model: type[BaseModel], origin: str) -> str | None:
    """What to say about a key no section has: the key, its section, where it was set, the closest valid key and
    every valid one (pydantic's own words name none of them)."""
    key, section = str(loc[-1]), ".".join(str(p) for p in loc[:-1])
    keys = _section_keys(model, loc[:-1])
    if keys is None:
        return None
    close = difflib.get_close_matches(key, keys, n=1)
    return (f"config error: {'.'.join(str(p) for p in loc)}: unknown key '{key}' "
            f"{f'in section {section!r}' if section else 'at the top level'}{f' ({origin})' if origin else ''}."
            f"{f' Did you mean {close[0]!r}?' if close else ''} Valid keys{f' of {section}' if section else ''}: {', '.join(keys)}")


def format_validation_error(err: ValidationError, model: type[BaseModel] | None = None,
                            origin: Callable[[str], str] = lambda field: "") -> str:
    """One line per error, naming the field; ``origin(field)`` says where a value was set (file or override)."""
    lines = []
    for e in err.errors():
        field = ".".join(str(p) for p in e["loc"]) or "<root>"
        unknown = _unknown_key(e["loc"], model, origin(field)) if e["type"] == "extra_forbidden" and model and e["loc"] else None
        lines.append(unknown or f"config error: {field}: {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), model: type[BaseModel] = PairsJobConfig):
    """``model``'s defaults <- YAML profile <- overrides. Raises ConfigError naming the field."""
    profile: dict = {}
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {p} must hold a mapping at the top level")
        profile = loaded
    data = apply_overrides(_merged(model, model().model_dump(mode="json"), profile), overrides)
    set_by = {item.split("=", 1)[0].strip(): item for item in overrides}

    def origin(field: str) -> str:
        # the override that set the key, a section above it or a key inside it; else the profile
        item = next((v for k, v in set_by.items() if field == k or field.startswith(k + ".") or k.startswith(field + ".")), None)
        return f"set by override '{item}'" if item else f"in {path}" if path is not None else ""

    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, model, origin)) from None


def load_config_or_exit(path: str | Path | None, overrides: Sequence[str] = (), model: type[BaseModel] = PairsJobConfig):
    """For jobs: print the field-level message and exit 2 before any work."""
    try:
        return load_config(path, overrides, model)
    except ConfigError as err:
        print(str(err), file=sys.stderr)
        raise SystemExit(CONFIG_ERROR_EXIT_CODE) from None
