"""The size bounds of what the server sends (wire/limits.py, issue 19): the measures agree with
what the codec really writes, and the largest reply they admit fits a document."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr_server.wire import KvList, List, Node, encode_document
from ivr_server.wire import messages as m
from ivr_server.wire.limits import (
    ECHO_ALWAYS_FITS,
    MAX_DOCUMENT,
    MAX_DTD_FILE,
    MAX_ECHOED,
    USER_DATA_WIRE_LIMIT,
    fit_echo,
    kv_wire_size,
    text_size,
)
from tests.strategies import kv_lists

ENCODINGS = ("ISO-8859-1", "UTF-8")
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)


def written(value: str, encoding: str) -> int:
    """Bytes the codec writes for ``value`` as an attribute value."""
    with_value = encode_document(
        "C", m.CallError(FailedReq="Unknown", ReqId=value), encoding=encoding
    )
    empty = encode_document("C", m.CallError(FailedReq="Unknown", ReqId=""), encoding=encoding)
    return len(with_value) - len(empty)


@given(TEXT)
def test_text_size_is_what_the_codec_writes(value: str) -> None:
    sizes = [written(value, encoding) for encoding in ENCODINGS]
    assert [text_size(value, encoding) for encoding in ENCODINGS] == sizes
    assert text_size(value) == max(sizes)


@pytest.mark.parametrize(
    ("value", "latin1", "utf8"),
    [
        ("abc", 3, 3),
        ("'", 6, 6),
        ("a&b", 7, 7),
        ("\t", 5, 5),
        ("\x01", 8, 3),  # a C0 control is written as U+FFFD
        ("é", 1, 2),
        ("α", 7, 2),  # &#x3B1;
        ("\U0010ffff", 10, 4),  # the longest: &#x10FFFF;
    ],
)
def test_text_size_examples(value: str, latin1: int, utf8: int) -> None:
    assert (text_size(value, "ISO-8859-1"), text_size(value, "UTF-8")) == (latin1, utf8)
    assert text_size(value) == max(latin1, utf8)


@given(kv_lists)
def test_kv_wire_size_is_what_the_codec_writes(items: KvList) -> None:
    for encoding in ENCODINGS:
        full = encode_document(
            "C", m.UDataResp(Result="Success", RequestId="", UDataEx=items), encoding=encoding
        )
        bare = encode_document("C", m.UDataResp(Result="Success", RequestId=""), encoding=encoding)
        assert kv_wire_size(items, encoding) == len(full) - len(bare) - len("<UDataEx></UDataEx>")


def test_kv_wire_size_of_ordinary_data_is_the_16_kb_count() -> None:
    items = (
        Node(Name="a", Type="Str", Val="x" * 100),
        List(Name="l", items=(Node(Name="b", Type="Int", Val="7"),)),
    )
    assert kv_wire_size(items) == (33 + 1 + 100) + (21 + 1 + 33 + 1 + 1)


@given(st.text(st.sampled_from("a'é\u03b1\U0001f600&"), min_size=0, max_size=1500))
def test_fit_echo_keeps_the_longest_prefix_that_fits(value: str) -> None:
    cut = fit_echo(value)
    assert value.startswith(cut)
    assert text_size(cut) <= MAX_ECHOED
    if cut != value:
        assert text_size(value[: len(cut) + 1]) > MAX_ECHOED
    else:
        assert text_size(value) <= MAX_ECHOED


def test_short_texts_always_fit() -> None:
    assert text_size("\U0010ffff" * ECHO_ALWAYS_FITS) <= MAX_ECHOED


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_the_largest_reply_the_bounds_admit_fits_a_document(encoding: str) -> None:
    """``UDataResp`` of a ``UDataGetAll`` with a CallId and a RequestId of the longest allowed,
    the longest ``dtd-file`` written as long as it can be, and data of the written limit."""
    call_id = fit_echo("\U0010ffff" * 200)
    request_id = fit_echo("'" * 200)
    assert text_size(call_id) > MAX_ECHOED - 10 and text_size(request_id) > MAX_ECHOED - 10
    value = "'" * ((USER_DATA_WIRE_LIMIT - 34) // 6)
    items = (Node(Name="k", Type="Str", Val=value),)
    assert USER_DATA_WIRE_LIMIT - 6 < kv_wire_size(items, encoding) <= USER_DATA_WIRE_LIMIT
    document = encode_document(
        call_id,
        m.UDataResp(Result="Success", RequestId=request_id, UDataEx=items),
        encoding=encoding,
        dtd_file="\U0010ffff" * MAX_DTD_FILE,
    )
    assert len(document) <= MAX_DOCUMENT
