"""The JSON form of the parse results: exact round trip, compact, malformed data refused."""

from __future__ import annotations

import json

import pytest

from lightmail.mailstore.mime.types import BodyPart, Envelope
from tests.unit.mime.corpus import CORPUS, SIMPLE, scan


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_json_round_trip(name: str) -> None:
    result = scan(CORPUS[name])
    text = json.dumps(result.body.to_json(), separators=(",", ":"))
    assert BodyPart.from_json(json.loads(text)) == result.body
    text = json.dumps(result.envelope.to_json(), separators=(",", ":"))
    assert Envelope.from_json(json.loads(text)) == result.envelope


def test_json_is_compact() -> None:
    body_start = SIMPLE.index(b"\r\n\r\n") + 4
    assert scan(SIMPLE).body.to_json() == [
        *("TEXT", "PLAIN", ["CHARSET", "US-ASCII"], None, None, "7BIT", 2),
        *(None, None, None, None, 0, body_start, len(SIMPLE)),
    ]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        1,
        "x",
        [],
        ["TEXT"],
        ["TEXT", "PLAIN", ["odd"], None, None, "7BIT", 0, None, None, None, None, 0, 0, 0],
        ["TEXT", "PLAIN", [], None, None, "7BIT", True, None, None, None, None, 0, 0, 0],
        ["TEXT", "PLAIN", [], None, None, "7BIT", 0, None, None, None, None, 0, 0, 0, [1]],
    ],
)
def test_json_rejects_malformed_data(bad: object) -> None:
    with pytest.raises(ValueError, match="malformed"):
        BodyPart.from_json(bad)
