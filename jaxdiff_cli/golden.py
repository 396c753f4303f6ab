"""``jaxdiff check --update``: write the current results into a spec's ``expect:`` block.

Only that block of the file is replaced (found as text: the top-level ``expect:`` key up to the
next top-level key), so the rest of the YAML, comments included, stays as it was. Arrays of more
than ``INLINE_MAX`` entries go to a sidecar ``<spec>.golden.npz`` referenced with ``{file, key}``.
The block records the jax/jaxlib versions, device and dtype, so a later mismatch can say whether
the environment changed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from jaxdiff_cli.atomic import atomic_open

INLINE_MAX = 64
_TOP_KEY = re.compile(r"^[^\s#-]")
_EXPECT = re.compile(r"^expect\s*:")


def _plain(arr: np.ndarray) -> Any:
    """Nested lists of Python floats that read back to the same bits in the array's dtype."""
    from jaxdiff_cli.encoding import array_json

    data = array_json(arr)["data"]
    return data


def expect_block(
    results: Mapping[str, np.ndarray], recorded: Mapping[str, str], keep: Mapping[str, Any], sidecar: Path
) -> tuple[str, dict[str, np.ndarray]]:
    """The new ``expect:`` YAML text, and the arrays that go to the sidecar file."""
    block: dict[str, Any] = {}
    big: dict[str, np.ndarray] = {}
    for name, arr in results.items():
        a = np.asarray(arr)
        if a.size > INLINE_MAX:
            big[name] = a
            block[name] = {"file": sidecar.name, "key": name}
        else:
            block[name] = _plain(a)
    for tol in ("rtol", "atol"):
        if tol in keep:
            block[tol] = keep[tol]
    block["recorded"] = dict(recorded)
    text = yaml.safe_dump({"expect": block}, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)
    return text, big


def replace_block(source: str, new_block: str) -> str:
    """``source`` with its top-level expect block replaced by ``new_block`` (appended if absent)."""
    lines = source.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if _EXPECT.match(line)), None)
    if start is None:
        sep = "" if not source or source.endswith("\n") else "\n"
        return source + sep + new_block
    end = start + 1
    while end < len(lines) and not _TOP_KEY.match(lines[end]):
        end += 1
    # Comment lines just above the next key belong to it, not to expect.
    while end - 1 > start and lines[end - 1].lstrip().startswith("#") and not lines[end - 1].startswith(" "):
        end -= 1
    return "".join(lines[:start]) + new_block + "".join(lines[end:])


def update_spec(path: Path, results: Mapping[str, np.ndarray], recorded: Mapping[str, str], keep: Mapping[str, Any]) -> list[str]:
    """Rewrite ``path``'s expect block (atomically); returns the files written."""
    sidecar = path.with_name(path.stem + ".golden.npz")
    block, big = expect_block(results, recorded, keep, sidecar)
    written = []
    if big:
        with atomic_open(sidecar) as f:
            np.savez(f, **big)  # type: ignore[arg-type]
        written.append(str(sidecar))
    text = replace_block(path.read_text(encoding="utf-8"), block)
    with atomic_open(path, "w") as f:
        f.write(text)
    written.append(str(path))
    return written
