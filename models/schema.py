"""Strict config sections: every model config (models/configs/*.json, and the copy inside a checkpoint)
is parsed once into frozen pydantic models that reject unknown keys, so a misspelt key is an error
naming the key and the file instead of a silent fall-back to a default."""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Annotated, Any, Self, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from models.errors import InvalidInputError

Section = TypeVar("Section", bound="StrictConfig")


class ModelConfigError(InvalidInputError):
    """A model config with an unknown key or a value of the wrong kind; the message names the file."""


class StrictConfig(BaseModel):
    """A config section: unknown keys are errors, values never change after parsing."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def parse(cls, data: Mapping[str, Any], source: str) -> Self:
        """data → this section, or ModelConfigError naming `source` and the offending key."""
        return parse_section(cls, data, source)

    def replace(self, **changes: Any) -> Self:
        """A copy with whole sections or values replaced (they count as given when stored)."""
        return self.model_copy(update=changes)

    def to_json(self) -> dict[str, Any]:
        """The JSON form a checkpoint stores: only the keys that were given (defaults stay code's)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def type_names(cls) -> tuple[str, ...]:
        """The values of this section's "type" key (tower specs), () when it has none."""
        if "type" not in cls.model_fields:
            return ()
        return tuple(get_args(cls.model_fields["type"].annotation))


def parse_section(cls: type[Section], data: Mapping[str, Any], source: str) -> Section:
    """data → cls, or ModelConfigError naming `source` (a file) and the offending key."""
    if not isinstance(data, Mapping):
        raise ModelConfigError(f"{source}: a config is a JSON object; got {type(data).__name__}")
    unknown = unknown_keys(cls, data)
    if unknown:
        key, known = unknown[0]
        raise ModelConfigError(f"{source}: unknown key {key!r} (known: {', '.join(known)})")
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top level)'}: {error['msg']}"
            for error in exc.errors()[:3]
        )
        raise ModelConfigError(f"{source}: {problems}") from exc


def unknown_keys(
    cls: type[StrictConfig], data: Mapping[str, Any], where: str = ""
) -> list[tuple[str, list[str]]]:
    """(dotted key, the keys its section knows) for every key no section of cls declares."""
    found: list[tuple[str, list[str]]] = []
    for key, value in data.items():
        if key not in cls.model_fields:
            found.append((f"{where}{key}", sorted(cls.model_fields)))
            continue
        section = _section_class(cls.model_fields[key].annotation, value)
        if section is not None and isinstance(value, Mapping):
            found.extend(unknown_keys(section, value, f"{where}{key}."))
    return found


def _section_class(annotation: Any, value: Any) -> type[StrictConfig] | None:
    """The section class a field's value parses into: the only one, or the one its "type" names."""
    classes = [c for c in _members(annotation) if isinstance(c, type) and issubclass(c, StrictConfig)]
    if len(classes) <= 1:
        return classes[0] if classes else None
    kind = value["type"] if isinstance(value, Mapping) and "type" in value else None
    return next((c for c in classes if kind in c.type_names()), None)


def _members(annotation: Any) -> list[Any]:
    """Unions (X | Y | None) and Annotated[...] flattened to their member types."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _members(arg)]
    return [annotation]
