"""The Temporal data converter: pydantic JSON, with one type-adapter cache per process.

``temporalio.contrib.pydantic`` caches a ``TypeAdapter`` per type hint, but the cache
lives on the payload converter, and the worker makes a payload converter for every
workflow instance. Each subscription run therefore rebuilt the adapters for its input,
activity results and messages (tens of milliseconds each for the state dataclasses) and
kept its own copies while cached. Sharing one cache makes that a once-per-process cost.

The wire format is the same as ``pydantic_data_converter``'s: either side can read the
other's payloads.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

from pydantic import PydanticUserError, TypeAdapter
from temporalio import workflow
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    EncodingPayloadConverter,
    JSONPlainPayloadConverter,
)

# Bounded: a sandboxed workflow module re-imported per run would make new type objects.
TYPE_ADAPTER_CACHE_SIZE = 2048

_type_adapter = functools.lru_cache(maxsize=TYPE_ADAPTER_CACHE_SIZE)(TypeAdapter)


def shared_type_adapter(type_hint: Any) -> TypeAdapter[Any]:
    """The process-wide adapter for ``type_hint`` (built on first use)."""
    adapter: TypeAdapter[Any] = _type_adapter(type_hint)
    return adapter


def warm_type_adapters(workflows: Iterable[type], activities: Iterable[Callable[..., Any]]) -> int:
    """Build the adapters a worker will need before it polls: workflow inputs, signal
    and update arguments, and activity results. Otherwise the first burst of workflow
    tasks builds them all at once, each task holding the GIL for tens of milliseconds.
    Returns how many type hints were warmed."""
    functions: list[Callable[..., Any]] = list(activities)
    for cls in workflows:
        defn = workflow._Definition.must_from_class(cls)
        functions.append(defn.run_fn)
        functions.extend(s.fn for s in defn.signals.values() if s.fn is not None)
        functions.extend(u.fn for u in defn.updates.values() if u.fn is not None)
    hints: set[Any] = set()
    for fn in functions:
        try:
            resolved = typing.get_type_hints(inspect.unwrap(fn))
        except (NameError, TypeError):  # a hint that only resolves at call time
            continue
        hints.update(h for h in resolved.values() if h is not type(None))
    for hint in hints:
        with contextlib.suppress(PydanticUserError):  # built (and refused) at use instead
            shared_type_adapter(hint)
    return len(hints)


class _SharedCacheJSONConverter(PydanticJSONPlainPayloadConverter):
    def __init__(self) -> None:
        super().__init__(max_cached_type_adapters=0)
        self._type_adapter = _type_adapter


# Built once. The SDK makes a payload converter for every workflow instance and two
# more for every activation (its data converter dataclass builds one in __post_init__);
# building the JSON converter each time (a pydantic serializer and an lru_cache wrapper)
# was a tenth of a renewal's activation time in bench/renewals.py. The encodings hold no
# state but the shared type-adapter cache, so every payload converter can share them.
_ENCODINGS: tuple[EncodingPayloadConverter, ...] = tuple(
    _SharedCacheJSONConverter() if isinstance(c, JSONPlainPayloadConverter) else c
    for c in DefaultPayloadConverter.default_encoding_payload_converters
)


class DunwellPayloadConverter(CompositePayloadConverter):
    """``PydanticPayloadConverter`` with the shared cache (nullary, as Temporal needs)."""

    def __init__(self) -> None:
        super().__init__(*_ENCODINGS)


data_converter = DataConverter(payload_converter_class=DunwellPayloadConverter)
