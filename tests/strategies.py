"""Hypothesis strategies that build any valid message of the schema (used by codec tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from ivr_server.wire import SPECS, List, Message, Node, NVPair
from ivr_server.wire.schema import ChildSpec, ElementSpec

# XML 1.0 characters (no surrogates, no C0 controls other than TAB, LF, CR).
xml_text = st.text(
    alphabet=st.characters(
        blacklist_categories=["Cs"],
        blacklist_characters="".join(chr(c) for c in range(32) if c not in (9, 10, 13))
        + "\ufffe\uffff",
    ),
    max_size=20,
)
names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_:.-",
    min_size=1,
    max_size=12,
)


def nodes() -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(lambda n, v: Node(Name=n, Type="Str", Val=v), xml_text, xml_text),
        st.builds(
            lambda n, v: Node(Name=n, Type="Int", Val=str(v)),
            xml_text,
            st.integers(-(2**31), 2**31 - 1),
        ),
        st.builds(
            lambda n, v: Node(Name=n, Type="Bin", Val=v),
            xml_text,
            st.text(alphabet="0123456789abcdef", max_size=16),
        ),
    )


kv_items: st.SearchStrategy[Any] = st.recursive(
    nodes(),
    lambda inner: st.builds(
        lambda n, items: List(Name=n, items=tuple(items)),
        xml_text,
        st.lists(inner, min_size=1, max_size=4),
    ),
    max_leaves=12,
)
kv_lists = st.lists(kv_items, min_size=1, max_size=5).map(tuple)
config_options = st.lists(nodes(), min_size=1, max_size=4).map(tuple)
nv_lists = st.lists(
    st.builds(lambda n, v: NVPair(NVName=n, NVVal=v), xml_text, xml_text), min_size=1, max_size=4
).map(tuple)


def _child(cs: ChildSpec) -> st.SearchStrategy[Any]:
    if cs.kind == "text":
        return xml_text
    if cs.kind == "kvlist":
        return config_options if cs.name == "ConfigOptions" else kv_lists
    if cs.kind == "nvpairs":
        return nv_lists
    return element(SPECS[cs.name])


def element(spec: ElementSpec) -> st.SearchStrategy[Any]:
    """Any valid instance of the element ``spec`` describes."""
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for a in spec.attrs:
        value = st.sampled_from(sorted(a.values)) if a.values is not None else xml_text
        if a.required or a.default is not None:
            fields[a.name] = value
        else:
            fields[a.name] = st.one_of(st.none(), value)
    groups: dict[str, list[str]] = {}
    for cs in spec.children:
        if cs.group is not None:
            assert cs.alt is not None
            groups.setdefault(cs.group, [])
            if cs.alt not in groups[cs.group]:
                groups[cs.group].append(cs.alt)
    exactly_one = spec.exactly_one_of

    @st.composite
    def build(draw: st.DrawFn) -> Any:
        kw = {name: draw(strategy) for name, strategy in fields.items()}
        chosen = {g: draw(st.sampled_from(alts)) for g, alts in groups.items()}
        only = draw(st.sampled_from(exactly_one)) if exactly_one else None
        for cs in spec.children:
            if only is not None:
                if cs.name == only:
                    kw[cs.name] = draw(_child(cs))
                continue
            if cs.group is not None and chosen[cs.group] != cs.alt:
                continue
            if cs.required:
                kw[cs.name] = draw(_child(cs))
            else:
                kw[cs.name] = draw(st.one_of(st.none(), _child(cs)))
        return spec.cls(**kw)

    return build()


def messages() -> st.SearchStrategy[Message]:
    """Any message of any type."""
    return st.one_of([element(spec) for spec in SPECS.values() if issubclass(spec.cls, Message)])
