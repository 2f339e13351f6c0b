"""The JSON form of the value types: the shape checks every ``from_json`` shares.

The value types (`lightmail.mailstore.mime.types`) write themselves as compact JSON
lists with ``to_json`` and read them back with ``from_json``; anything that is not
the expected shape raises one error, ``ValueError("malformed MIME structure JSON
...")``.
"""

from __future__ import annotations

from typing import TypeAlias

from lightmail.mailstore.mime.params import Params

JsonValue: TypeAlias = "bool | int | float | str | list[JsonValue] | dict[str, JsonValue] | None"


def json_list(data: object, low: int, high: int | None) -> list[object]:
    """`data` as a list of `low` to `high` (None: any number of) items."""
    if not isinstance(data, list) or len(data) < low or (high is not None and len(data) > high):
        raise ValueError(f"malformed MIME structure JSON: {data!r:.80}")
    return list(data)


def json_str(data: object) -> str:
    if not isinstance(data, str):
        raise ValueError(f"malformed MIME structure JSON: expected a string, got {data!r:.80}")
    return data


def json_nstr(data: object) -> str | None:
    return None if data is None else json_str(data)


def json_int(data: object) -> int:
    if not isinstance(data, int) or isinstance(data, bool):
        raise ValueError(f"malformed MIME structure JSON: expected an integer, got {data!r:.80}")
    return data


def params_to_json(params: Params) -> list[JsonValue]:
    """Parameters as one flat list: name, value, name, value ..."""
    return [item for pair in params for item in pair]


def params_from_json(data: object) -> Params:
    flat = [json_str(item) for item in json_list(data, 0, None)]
    if len(flat) % 2:
        raise ValueError("malformed MIME structure JSON: odd parameter list")
    return tuple(zip(flat[::2], flat[1::2], strict=True))
