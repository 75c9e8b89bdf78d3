"""Hypothesis strategies for every registered payload model, built from its fields.

Registered with hypothesis, so tests draw samples with ``st.from_type(model)``.
"""

import types
from collections.abc import Callable, Sequence
from dataclasses import asdict, is_dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from crm_events import registry
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, ValidationError
from pydantic.fields import FieldInfo

_BOUNDS = {
    "ge": ("min_value", 0),
    "gt": ("min_value", 1),
    "le": ("max_value", 0),
    "lt": ("max_value", -1),
}


def _constraints(metadata: Sequence[Any]) -> dict[str, Any]:
    """Flatten pydantic / annotated-types metadata into min/max bounds, lengths and pattern."""
    found: dict[str, Any] = {"min_value": None, "max_value": None}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found |= {k: v for k, v in _constraints(item.metadata).items() if v is not None}
        elif is_dataclass(item) and not isinstance(item, type):
            for name, value in asdict(item).items():
                if value is not None and name in _BOUNDS:
                    key, shift = _BOUNDS[name]
                    found[key] = value + shift
                elif value is not None:
                    found[name] = value
    return found


def _strategy(annotation: Any, metadata: Sequence[Any] = ()) -> st.SearchStrategy[Any]:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _strategy(args[0], [*metadata, *args[1:]])
    bounds = _constraints(metadata)
    if origin in (Union, types.UnionType):
        return st.one_of([_strategy(arg) for arg in args])
    if origin is Literal:
        return st.sampled_from(args)
    if origin is list:
        return st.lists(_strategy(args[0]), max_size=3)
    if origin is dict:
        return st.dictionaries(_strategy(args[0]), _strategy(args[1]), max_size=3)
    if annotation is type(None):
        return st.none()
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return payloads(annotation)
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return st.sampled_from(annotation)
    if annotation is str:
        max_size = bounds.get("max_length", 40)
        if "pattern" in bounds:
            text = st.from_regex(bounds["pattern"], fullmatch=True)
            return text.filter(lambda s: len(s) <= max_size)
        return st.text(min_size=bounds.get("min_length", 0), max_size=max_size)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        bool: st.booleans(),
        int: st.integers(bounds["min_value"], bounds["max_value"]),
        Decimal: st.decimals(
            -(10**12) if bounds["min_value"] is None else bounds["min_value"],
            10**12 if bounds["max_value"] is None else bounds["max_value"],
            places=2,
            allow_nan=False,
            allow_infinity=False,
        ),
        date: st.dates(),
        AwareDatetime: st.datetimes(timezones=st.just(UTC)),
        datetime: st.datetimes(timezones=st.just(UTC)),
    }
    return simple[annotation]


def _validate(model: type[BaseModel]) -> Callable[[dict[str, Any]], BaseModel | None]:
    def validate(fields: dict[str, Any]) -> BaseModel | None:
        try:
            return model.model_validate(fields)
        except ValidationError:  # a model validator rejected the combination
            return None

    return validate


def payloads(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """Valid instances of ``model``, every optional field sometimes set."""
    fields = {
        name: _strategy(info.annotation, info.metadata) for name, info in model.model_fields.items()
    }
    return st.fixed_dictionaries(fields).map(_validate(model)).filter(lambda m: m is not None)


for _type in registry.event_types():
    for _version in registry.versions(_type):
        _model = registry.model(_type, _version)
        st.register_type_strategy(_model, payloads(_model))
