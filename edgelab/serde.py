"""Dataclass <-> protobuf conversion, by field name.

`edgelab.domain` mirrors the messages in proto/edgelab/v1 field for field, so one generic
pair of functions serves every message instead of a hand-written pair per type:
nested dataclasses become sub-messages, lists become repeated fields, dicts become
maps, `None` means an unset optional/message field, and a domain enum value `"fp32"`
maps to the proto enum value `PRECISION_FP32` (the enum's own prefix plus the value).
"""

from __future__ import annotations

import dataclasses
import typing
from enum import Enum
from typing import Any, TypeVar, Union

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

T = TypeVar("T")
M = TypeVar("M", bound=Message)


def _enum_prefix(enum_type: Any) -> str:
    # "FailureKind" -> "FAILURE_KIND"
    name = enum_type.name
    return "".join(f"_{c}" if c.isupper() and i else c for i, c in enumerate(name)).upper()


def _enum_to_number(enum_type: Any, value: Enum) -> int:
    return int(enum_type.values_by_name[f"{_enum_prefix(enum_type)}_{str(value.value).upper()}"].number)


def _enum_from_number(enum_type: Any, number: int, cls: type[Enum]) -> Enum:
    name = enum_type.values_by_number[number].name
    return cls(name[len(_enum_prefix(enum_type)) + 1 :].lower())


def _is_repeated(fd: Any) -> bool:
    # `is_repeated` from protobuf 6.31, which deprecates `label` (gone in 7); agents run protobuf from 3.20.
    is_repeated = getattr(fd, "is_repeated", None)
    return bool(is_repeated) if is_repeated is not None else fd.label == FieldDescriptor.LABEL_REPEATED


def to_proto(obj: Any, message: M) -> M:
    """Fill `message` from dataclass `obj` and return it."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if value is None:
            continue
        fd = message.DESCRIPTOR.fields_by_name[f.name]
        target = getattr(message, f.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            target.update(value)
        elif _is_repeated(fd):
            for item in value:
                if fd.message_type is not None:
                    to_proto(item, target.add())
                elif fd.enum_type is not None:
                    target.append(_enum_to_number(fd.enum_type, item))
                else:
                    target.append(item)
        elif fd.message_type is not None:
            target.SetInParent()
            to_proto(value, target)
        elif fd.enum_type is not None:
            setattr(message, f.name, _enum_to_number(fd.enum_type, value))
        else:
            setattr(message, f.name, value)
    return message


_HINTS: dict[Any, dict[str, Any]] = {}


def _hints(cls: Any) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _strip_optional(hint: Any) -> Any:
    # Only `Optional[X]` (typing.Union): `edgelab.domain` avoids `X | None`, which Python < 3.10 cannot evaluate.
    if typing.get_origin(hint) is Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0]
    return hint


def from_proto(message: Message, cls: type[T]) -> T:
    """Build dataclass `cls` from `message`."""
    kwargs: dict[str, Any] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        fd = message.DESCRIPTOR.fields_by_name[f.name]
        hint = _strip_optional(hints[f.name])
        value = getattr(message, f.name)
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            kwargs[f.name] = dict(value)
        elif _is_repeated(fd):
            (item_type,) = typing.get_args(hint)
            if fd.message_type is not None:
                kwargs[f.name] = [from_proto(v, item_type) for v in value]
            elif fd.enum_type is not None:
                kwargs[f.name] = [_enum_from_number(fd.enum_type, v, item_type) for v in value]
            else:
                kwargs[f.name] = list(value)
        elif fd.has_presence and not message.HasField(f.name):
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                kwargs[f.name] = from_proto(value, hint) if fd.message_type is not None else value
            # else: leave the dataclass default (None for optional fields)
        elif fd.message_type is not None:
            kwargs[f.name] = from_proto(value, hint)
        elif fd.enum_type is not None:
            kwargs[f.name] = _enum_from_number(fd.enum_type, value, hint)
        else:
            kwargs[f.name] = value
    return cls(**kwargs)


def to_jsonable(obj: Any) -> Any:
    """Dataclass tree -> plain JSON types (enums as their values), for the SQLite store."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_jsonable(v) for k, v in obj.items()}
    return obj


def from_jsonable(data: Any, cls: type[T]) -> T:
    """Inverse of `to_jsonable` for a dataclass type."""
    return typing.cast(T, _from_jsonable(data, cls))


def _from_jsonable(data: Any, hint: Any) -> Any:
    if data is None:
        return None
    hint = _strip_optional(hint)
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return [_from_jsonable(v, item) for v in data]
    if origin is dict:
        return dict(data)
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        cls: Any = hint
        hints = _hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: _from_jsonable(v, hints[k]) for k, v in data.items() if k in names})
    return data
