"""YAML text that every YAML reader reads back as written.

PyYAML's ``safe_dump(..., allow_unicode=True)`` writes a text holding a NEL (U+0085) in a
plain or single-quoted scalar with the NEL raw; YAML takes a raw NEL for a line break
(PyYAML and libyaml/go-yaml both turn it into one), and a line break inside a flow
scalar is folded: the text came back with a space where the NEL was. The grid's cell
names are free text (a name ``"To\\Np"`` is accepted), and the Prometheus rules file of
cell positions and the grid written by ``datasets build`` gave the name back otherwise
(t169). Here a text holding a NEL, U+2028 or U+2029 is written double-quoted, where each
is an escape (``\\N``, ``\\L``, ``\\P``) every reader takes alike.
"""

from __future__ import annotations

from typing import Any

import yaml

# Characters YAML reads as line breaks beside LF and CR (which PyYAML already escapes).
_BREAKS = ("\x85", "\u2028", "\u2029")


class _Dumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` whose texts holding a YAML line break are double-quoted."""


def _text(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = '"' if any(c in data for c in _BREAKS) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _text)


def yaml_text(doc: Any, **options: Any) -> str:
    """``doc`` as YAML text, as ``yaml.safe_dump(doc, **options)`` writes it but for a
    text holding a NEL, U+2028 or U+2029, written double-quoted with the escape."""
    return str(yaml.dump(doc, Dumper=_Dumper, **options))
