"""Odd YAML in the files citybrain reads through playbooks.loader (t44), each a
``file:line: not valid YAML`` error where it was a traceback or a garbled message:
scalars whose explicit tag cannot take them (``continue: !!bool 1``, ``!!int abc``,
``!!timestamp x``: PyYAML's constructors raised KeyError, ValueError, IndexError or
AttributeError), values holding themselves through an alias (RecursionError), lists or
mappings as keys (TypeError), and an anchor name given twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from playbooks.errors import PlaybookError
from playbooks.loader import PLAYBOOK_DIR, load_grid, load_playbooks, load_routing

BAD_SCALARS = [
    "!!bool 1",
    '!!bool "y"',
    "!!bool ''",
    "!!int abc",
    "!!int ''",
    "!!int 0x",
    "!!float x",
    "!!timestamp x",
    "!!timestamp 2001-13-45",
]


@pytest.mark.parametrize("scalar", BAD_SCALARS)
def test_a_routing_file_with_a_bad_tagged_scalar_is_a_file_line_error(
    tmp_path: Path, scalar: str
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n  routes:\n"
        f"  - matchers: ['kind=\"pm25\"']\n    continue: {scalar}\n"
    )
    with pytest.raises(PlaybookError) as info:
        load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert str(info.value).startswith(f"{path}:7: not valid YAML: "), str(info.value)
    assert "cannot be read as its tag" in str(info.value)


def test_a_grid_with_a_bad_tagged_scalar_is_a_file_line_error(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(
        "version: 1\ncells:\n  - {id: c, level: city, name: C, unit: u, lat: !!float x}\n"
    )
    with pytest.raises(PlaybookError) as info:
        load_grid(path)
    assert str(info.value).startswith(f"{path}:3: not valid YAML: 'x' cannot be read as its tag")


def test_a_tagged_scalar_its_tag_takes_is_read() -> None:
    # The wrapper changes nothing for values the tags take.
    from playbooks.loader import load_yaml

    assert load_yaml("a: !!bool yes\nb: !!int 0x10\nc: !!float '1.5'\nd: !!str 5\n") == {
        "a": True,
        "b": 16,
        "c": 1.5,
        "d": "5",
    }


# A value that holds itself through an alias (t44): PyYAML built an endless structure and
# the schema or a message walking it raised RecursionError, a traceback.
RECURSIVE = [
    ("route: &r\n  playbook: sensor-anomaly\n  group_by: [kind]\n  routes: [*r]\n", 2),
    (
        "route:\n  playbook: sensor-anomaly\n  group_by: [kind]\n  routes:\n"
        "  - &c {matchers: ['kind=\"pm25\"'], routes: [*c]}\n",
        6,
    ),
    ("route:\n  playbook: sensor-anomaly\n  group_by: &g [kind, *g]\n", 4),
]


@pytest.mark.parametrize(("text", "line"), RECURSIVE)
def test_a_routing_file_holding_itself_through_an_alias_is_a_file_line_error(
    tmp_path: Path, text: str, line: int
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("version: 1\n" + text)
    with pytest.raises(PlaybookError) as info:
        load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert str(info.value).startswith(f"{path}:{line}: not valid YAML: the value at line "), str(
        info.value
    )
    assert "holds itself through an alias" in str(info.value)


def test_a_grid_holding_itself_through_an_alias_is_a_file_line_error(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("version: 1\ncells: &c\n  - {id: c, level: city, name: C, unit: u, x: *c}\n")
    with pytest.raises(PlaybookError, match="holds itself through an alias"):
        load_grid(path)


def test_aliases_that_do_not_recurse_are_read() -> None:
    from playbooks.loader import load_yaml

    assert load_yaml("a: &x [1, {b: 2}]\nc: [*x, *x]\nd: {e: *x}\n") == {
        "a": [1, {"b": 2}],
        "c": [[1, {"b": 2}], [1, {"b": 2}]],
        "d": {"e": [1, {"b": 2}]},
    }


@pytest.mark.parametrize(
    "entry", ["[matchers]: ['kind=\"pm25\"']", "{a: 1}: 2", "<<: [{[x]: 1}, {[x]: 2}]"]
)
def test_a_list_or_mapping_as_a_key_is_a_file_line_error(tmp_path: Path, entry: str) -> None:
    # t44: the check for keys merged twice hashed each key's value: TypeError, a traceback.
    path = tmp_path / "routing.yaml"
    path.write_text(
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n  routes:\n"
        f"  - playbook: sensor-anomaly\n    {entry}\n"
    )
    with pytest.raises(PlaybookError) as info:
        load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert "not valid YAML" in str(info.value) and "unhashable key" in str(info.value)


def test_an_anchor_given_twice_is_said_in_one_sentence(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text(
        "version: 1\ncells:\n  - &c {id: a, level: city, name: A, unit: u}\n  - &c {}\n"
    )
    with pytest.raises(PlaybookError) as info:
        load_grid(path)
    assert str(info.value).startswith(
        f"{path}:4: not valid YAML: an anchor (&name) is given again (first on line 3); give "
        "each anchor its own name"
    ), str(info.value)


ROUTING = "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n"


@pytest.mark.parametrize(
    ("tail", "line"),
    [
        ("---\nroute: {playbook: flash-flood, group_by: [street]}\n", 6),
        ("--- ''\n", 5),
        ("---\n# comments only\n---\nversion: 1\n", 8),
        ("...\n---\nfoo: [\n", 7),  # YAML that does not parse: unread there (its last line: t151)
    ],
)
def test_a_second_document_that_holds_something_is_refused_saying_why(
    tmp_path: Path, tail: str, line: int
) -> None:
    # t50: Alertmanager reads the first document of its file and ignores the rest unread
    # (even YAML that does not parse); citybrain said "not valid YAML: but found another
    # document", of valid YAML. A second document's routes would be lost without a word.
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING + tail)
    with pytest.raises(PlaybookError) as info:
        load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert str(info.value) == (
        f"{path}:{line}: a second YAML document (after a '---' line): citybrain reads one "
        "document a file (Alertmanager reads the first and ignores the rest unread); remove "
        "the '---' line and what follows, or move it into the first document"
    )


@pytest.mark.parametrize(
    "text",
    [
        ROUTING + "---\n",
        ROUTING + "---\n# nothing more\n",
        ROUTING + "---\n---\n",
        ROUTING + "...\n",
        "---\n" + ROUTING,
        "%YAML 1.1\n---\n" + ROUTING + "...\n",
    ],
)
def test_documents_that_hold_nothing_after_the_first_are_read_as_nothing(
    tmp_path: Path, text: str
) -> None:
    # t50: a trailing '---' (as templating tools write) is read by Alertmanager; it holds
    # nothing, so it means nothing here either (it was a YAML error).
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    router = load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert router.root.playbook == "sensor-anomaly"
    assert router.root.group_by == ("kind",)


def test_a_grid_with_a_second_document_is_refused_saying_why(tmp_path: Path) -> None:
    path = tmp_path / "grid.yaml"
    path.write_text("version: 1\nkinds: []\ncells: []\nsensors: []\n---\nkinds: []\n")
    with pytest.raises(PlaybookError, match=rf"^{path}:6: a second YAML document"):
        load_grid(path)


# t107: tags Alertmanager's YAML reader (go-yaml v2) reads through, a tagged list or
# mapping by its kind and a scalar tagged with no YAML scalar type as its text; PyYAML
# said "could not determine a constructor for the tag" (and made a set of !!set {kind}).
@pytest.mark.parametrize(
    "route",
    [
        "- matchers: [!foo 'kind=\"pm25\"']",
        "- matchers: [!<!x> 'kind=\"pm25\"']",
        "- matchers: [!<tag:example.com,2000:x> 'kind=\"pm25\"']",
        "- matchers: [!!foo 'kind=\"pm25\"']",
        "- matchers: !foo ['kind=\"pm25\"']",
        "- !foo {matchers: ['kind=\"pm25\"']}",
        "- match: {kind: !foo pm25}",
    ],
)
def test_a_tagged_node_is_read_as_alertmanager_reads_it(tmp_path: Path, route: str) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n  routes:\n"
        f"  {route}\n"
    )
    router = load_routing(path, load_playbooks(PLAYBOOK_DIR))
    (child,) = router.root.routes
    assert [str(m) for m in child.matchers] == ['kind="pm25"']


def test_a_set_where_group_by_goes_is_refused_as_alertmanager_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text("version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: !!set {kind}\n")
    with pytest.raises(PlaybookError, match=r"routing.yaml:4: route.group_by: is a mapping"):
        load_routing(path, load_playbooks(PLAYBOOK_DIR))


# t157: go-yaml v2 (Alertmanager's YAML reader) takes an untagged scalar whose value is
# "~" or "null" for null before a type of Alertmanager's own decodes it, quoted too, so
# `match_re: {category: '~'}` is refused there ("cannot unmarshal !!str `~` into
# config.Regexp"), where PyYAML read the regex ~ and citybrain routed by it.
QUOTED_NULLS = {
    "match_re '~'": ("    match_re: {category: '~'}\n", "", 7, "route.routes.0.match_re.category"),
    'match_re "null"': ('    match_re:\n      category: "null"\n', "", 8, "route.routes.0.match_re.category"),
    "match_re escaped ~": ('    match_re: {category: "\\x7e"}\n', "", 7, "route.routes.0.match_re.category"),
    "match_re anchored '~'": ("    match_re: {category: &t '~'}\n", "", 7, "route.routes.0.match_re.category"),
    "match_re block ~": ("    match_re:\n      category: |-\n        ~\n", "", 8, "route.routes.0.match_re.category"),
    "source_match_re 'null'": (
        "",
        "inhibit_rules:\n  - source_match_re: {category: 'null'}\n    target_matchers: [kind=a]\n",
        8,
        "inhibit_rules.0.source_match_re.category",
    ),
    "target_match_re '~'": (
        "",
        "inhibit_rules:\n  - source_matchers: [kind=a]\n    target_match_re:\n      category: '~'\n",
        10,
        "inhibit_rules.0.target_match_re.category",
    ),
}  # fmt: skip
ROUTING_HEAD = (
    "version: 1\nroute:\n  playbook: sensor-anomaly\n  group_by: [kind]\n  routes:\n"
    "  - matchers: ['kind=\"pm25\"']\n"
)


@pytest.mark.parametrize("name", sorted(QUOTED_NULLS))
def test_a_quoted_null_as_a_regex_is_refused_as_alertmanager_refuses_it(
    tmp_path: Path, name: str
) -> None:
    route, after, line, where = QUOTED_NULLS[name]
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_HEAD + route + after)
    with pytest.raises(PlaybookError) as info:
        load_routing(path, load_playbooks(PLAYBOOK_DIR))
    said = str(info.value)
    assert f"{path}:{line}: {where}: " in said, said
    assert "is read as no value (null) by Alertmanager's YAML reader" in said, said
    assert "into config.Regexp" in said and "matches the same" in said, said


@pytest.mark.parametrize("scalar", ["!!str ~", "!!str null", "!foo ~", "'Null'", "'~ '", "'(?:~)'"])
def test_a_regex_go_yaml_reads_as_text_is_read(tmp_path: Path, scalar: str) -> None:
    # Tagged (go-yaml keeps the tag and decodes the text), or not exactly ~ or null.
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_HEAD + f"    match_re: {{category: {scalar}}}\n")
    router = load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert len(router.root.routes[0].matchers) == 2


# t157: go-yaml v2 gives a !!binary scalar to a text field as its decoded text; PyYAML
# made bytes of it (refused as "is b'a'", or an interval named by its base64 text).
BINARY_READ = {
    "match value": ("    match: {category: !!binary YQ==}\n", 'category="a"'),
    "match_re value": ("    match_re: {category: !!binary YXxi}\n", 'category=~"^(?:a|b)$"'),
    "a block of base64 over two lines": (
        "    match: {kind: pm25}\n  - playbook: sensor-anomaly\n    matchers:\n"
        "    - !!binary |\n      Y2F0ZWdvcnk9\n      YQ==\n",
        'category="a"',
    ),
}


@pytest.mark.parametrize("name", sorted(BINARY_READ))
def test_a_binary_scalar_is_read_as_its_text(tmp_path: Path, name: str) -> None:
    route, matcher = BINARY_READ[name]
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_HEAD + route)
    router = load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert matcher in [str(m) for m in router.root.routes[-1].matchers]


def test_a_binary_interval_name_names_the_interval(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(
        ROUTING_HEAD
        + "    mute_time_intervals: [!!binary bmlnaHRz]\n"
        + "time_intervals:\n  - name: nights\n    time_intervals: [{years: ['1990']}]\n"
    )
    router = load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert router.root.routes[0].mute_time_intervals == ("nights",)


@pytest.mark.parametrize(
    ("scalar", "said"),
    [("!!binary 'YQ='", "is not base64"), ("!!binary /w==", "not UTF-8 text")],
)
def test_a_binary_scalar_that_is_no_text_is_a_file_line_error(
    tmp_path: Path, scalar: str, said: str
) -> None:
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_HEAD + f"    match: {{category: {scalar}}}\n")
    with pytest.raises(PlaybookError) as info:
        load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert str(info.value).startswith(f"{path}:7: not valid YAML: "), str(info.value)
    assert said in str(info.value), str(info.value)


@pytest.mark.parametrize(
    ("written", "matcher"),
    [
        ("match: {category: ! 5}", 'category="5"'),
        ("match: {category: ! 2026-10-01}", 'category="2026-10-01"'),
        ("match_re: {category: ! ~}", 'category=~"^(?:~)$"'),
        ("match_re: {category: ! '~'}", 'category=~"^(?:~)$"'),
        ("match_re: {category: &n ! null}", 'category=~"^(?:null)$"'),
        ("match: {category: !<!> 5}", 'category="5"'),
    ],
)
def test_a_scalar_tagged_non_specific_is_its_text(
    tmp_path: Path, written: str, matcher: str
) -> None:
    # t157: YAML's non-specific tag ! makes a scalar text, as go-yaml v2 (Alertmanager)
    # reads it; PyYAML resolved it as untagged (5, a date, null: refused as not text).
    path = tmp_path / "routing.yaml"
    path.write_text(ROUTING_HEAD + f"    {written}\n")
    router = load_routing(path, load_playbooks(PLAYBOOK_DIR))
    assert matcher in [str(m) for m in router.root.routes[0].matchers]
