"""Lines of keys in a spec's YAML text (node marks), for annotations and errors that point at the line."""

from __future__ import annotations

import pytest

from jaxdiff_cli.errors import Where, where
from jaxdiff_cli.inputs.yamlfile import locate

TEXT = """\
# comment
function: "lambda x, w: x * w"
primals:
  x: [1.0, 2.0]
  w: {random: normal, shape: [2], seed: 0}
expect:
  value: [[1, 2],
          [3, 4]]
cases:
  - name: a
    primals: {x: [3.0]}
  - name: b
"""


@pytest.mark.parametrize(
    ("key", "spot"),
    [
        ("function", (2, 1)),
        ("primals.x", (4, 3)),
        ("primals.x[1]", (4, 12)),
        ("primals.w.shape", (5, 23)),
        ("expect.value[1][0]", (8, 12)),
        ("cases[0].primals.x", (11, 15)),
        ("cases[1].function", (2, 1)),  # not in the case: the shared key it comes from
        ("cases[1].primals.q", (12, 5)),  # nowhere: the deepest part that is there (the case)
        ("primals.q", (3, 1)),
        ("nothing", None),
    ],
)
def test_locate_finds_the_key_or_item(key: str, spot: tuple[int, int] | None) -> None:
    assert locate(TEXT, key) == spot


def test_locate_on_text_that_is_not_yaml() -> None:
    assert locate("function: [x\n", "function") is None
    assert locate("", "function") is None


def test_where_keeps_file_and_key_apart_and_reads_as_before() -> None:
    w = where("s.yaml", "primals.x")
    assert w == "s.yaml: primals.x" and isinstance(w, Where) and (w.file, w.key) == ("s.yaml", "primals.x")
    case = where(where("s.yaml", "cases[2]"), "tangents")
    assert case == "s.yaml: cases[2]: tangents" and (case.file, case.key) == ("s.yaml", "cases[2].tangents")
