"""The CARDDAV:filter, limit and address-data of a REPORT body (RFC 6352 sections 8.6 and
10.4-10.5) as the server reads them: what it takes, and what it refuses with which
precondition."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from lightmail.calendars.vcard import CardFilter, CardPropFilter, ParamFilter, TextMatch
from lightmail.dav.call import DavError
from lightmail.dav.carddav import MAX_RESULTS, parse_filter, parse_limit, wanted_properties
from lightmail.dav.xml import parse

CR = "urn:ietf:params:xml:ns:carddav"


def element(body: str) -> ET.Element:
    root = parse(f'<C:x xmlns:C="{CR}">{body}</C:x>'.encode())
    assert root is not None
    return root


def node(body: str) -> ET.Element:
    (child,) = list(element(body))
    return child


def test_a_filter_with_every_kind_of_test_is_read() -> None:
    read = parse_filter(
        node(
            '<C:filter test="allof"><C:prop-filter name="fn" test="allof">'
            '<C:text-match collation="i;octet" match-type="equals" negate-condition="yes">'
            "Ann</C:text-match>"
            '<C:param-filter name="type"><C:is-not-defined/></C:param-filter></C:prop-filter>'
            '<C:prop-filter name="NICKNAME"><C:is-not-defined/></C:prop-filter></C:filter>'
        )
    )
    assert read == CardFilter(
        (
            CardPropFilter(
                "FN",
                all_of=True,
                texts=(TextMatch("Ann", "i;octet", "equals", negate=True),),
                params=(ParamFilter("TYPE", is_not_defined=True),),
            ),
            CardPropFilter("NICKNAME", is_not_defined=True),
        ),
        all_of=True,
    )
    assert parse_filter(None) == CardFilter()
    default = parse_filter(
        node(
            '<C:filter><C:prop-filter name="FN"><C:text-match collation="default">a'
            "</C:text-match></C:prop-filter></C:filter>"
        )
    )
    assert default.props[0].texts == (TextMatch("a"),)


@pytest.mark.parametrize(
    ("body", "status", "precondition"),
    [
        ("<C:filter><C:comp-filter/></C:filter>", 403, "supported-filter"),
        ('<C:filter test="some"/>', 400, "valid-filter"),
        ("<C:filter><C:prop-filter/></C:filter>", 403, "supported-filter"),
        (f'<C:filter><C:prop-filter name="{"X" * 200}"/></C:filter>', 403, "supported-filter"),
        (
            '<C:filter><C:prop-filter name="FN"><C:time-range/></C:prop-filter></C:filter>',
            403,
            "supported-filter",
        ),
        (
            '<C:filter><C:prop-filter name="FN"><C:is-not-defined/><C:text-match>a'
            "</C:text-match></C:prop-filter></C:filter>",
            403,
            "valid-filter",
        ),
        (
            '<C:filter><C:prop-filter name="FN"><C:text-match collation="i;klingon">a'
            "</C:text-match></C:prop-filter></C:filter>",
            403,
            "supported-collation",
        ),
        (
            '<C:filter><C:prop-filter name="FN"><C:text-match match-type="regex">a'
            "</C:text-match></C:prop-filter></C:filter>",
            403,
            "supported-filter",
        ),
        (
            '<C:filter><C:prop-filter name="FN"><C:text-match negate-condition="maybe">a'
            "</C:text-match></C:prop-filter></C:filter>",
            400,
            "valid-filter",
        ),
        (
            '<C:filter><C:prop-filter name="TEL"><C:param-filter name="TYPE">'
            "<C:is-not-defined/><C:is-not-defined/></C:param-filter></C:prop-filter></C:filter>",
            403,
            "supported-filter",
        ),
        (
            '<C:filter><C:prop-filter name="TEL"><C:param-filter name="TYPE">'
            "<C:prop-filter/></C:param-filter></C:prop-filter></C:filter>",
            403,
            "supported-filter",
        ),
    ],
)
def test_filters_the_server_cannot_run_are_refused_with_their_precondition(
    body: str, status: int, precondition: str
) -> None:
    with pytest.raises(DavError) as refused:
        parse_filter(node(body))
    assert refused.value.status == status
    assert refused.value.condition is not None
    assert refused.value.condition[1] == precondition


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", MAX_RESULTS),
        ("<C:limit><C:nresults>7</C:nresults></C:limit>", 7),
        (f"<C:limit><C:nresults>{MAX_RESULTS * 10}</C:nresults></C:limit>", MAX_RESULTS),
    ],
)
def test_the_limit_is_the_clients_up_to_the_servers(body: str, expected: int) -> None:
    assert parse_limit(element(body)) == expected


@pytest.mark.parametrize("value", ["0", "-1", "x", "", "9" * 30])
def test_a_limit_that_is_not_a_positive_integer_is_refused(value: str) -> None:
    with pytest.raises(DavError) as refused:
        parse_limit(element(f"<C:limit><C:nresults>{value}</C:nresults></C:limit>"))
    assert refused.value.status == 400


def test_address_data_names_properties_or_the_whole_card() -> None:
    assert wanted_properties(node("<C:address-data/>")) is None
    assert wanted_properties(node("<C:address-data><C:allprop/></C:address-data>")) is None
    assert wanted_properties(
        node(
            '<C:address-data version="4.0"><C:prop name="FN"/>'
            '<C:prop name="TEL" novalue="yes"/></C:address-data>'
        )
    ) == [("FN", False), ("TEL", True)]
    for attributes in ('content-type="application/vcard+json"', 'version="2.1"'):
        with pytest.raises(DavError) as refused:
            wanted_properties(node(f"<C:address-data {attributes}/>"))
        assert refused.value.condition == (CR, "supported-address-data")
