"""The catalogue of bad inputs: each gets its exit code, one line naming the file and key path,
no traceback, and nothing else happens (no output file, nothing written)."""

from __future__ import annotations

import os
import shutil
import struct
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jaxdiff_cli.errors import ExitCode

from ..conftest import ASSETS, Cli

POLY = "function: x * 2\nprimals:\n  x: [1.0, 2.0, 3.0]\n"
SCALAR = "function: jnp.sum(x**2)\nprimals:\n  x: [1.0, 2.0, 3.0]\n"
TREE = "function: jnp.sum(p['W'] @ x)\nprimals:\n  p: {W: [[1.0, 2.0], [3.0, 4.0]], b: [0.0, 0.0]}\n  x: [1.0, 1.0]\n"
F = "."  # the asset modules are copied next to the spec: a spec names files inside its folder
# a: 10 values; b: 9 aliases of a (~91); ... g: ~5.4 million once expanded, from 300 bytes.
LAUGHS = "function: x\n{key}:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)

# (id, spec text or None, command line ({spec}, {tmp}, {assets} filled in), exit code, text in the message)
CATALOGUE: list[tuple[str, str | None, list[str], int, str]] = [
    # --- the file itself
    ("malformed yaml", "function: [x\n", ["eval", "{spec}"], 3, "spec.yaml: line 2, column 1"),
    ("tab indentation", "function: x\n\tprimals: 1\n", ["eval", "{spec}"], 3, "spec.yaml: line 2"),
    (
        "python object tag",
        "function: !!python/object/apply:os.system ['touch {tmp}/CANARY']\n",
        ["eval", "{spec}"],
        3,
        "not allowed in a spec",
    ),
    ("python name tag", "function: !!python/name:os.system\n", ["eval", "{spec}"], 3, "not allowed in a spec"),
    ("custom tag", "function: !include other.yaml\n", ["eval", "{spec}"], 3, "could not determine a constructor"),
    (
        "spec is a list",
        "- function\n- x\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: the spec must be a mapping of keys (function, primals, ...), not a list",
    ),
    ("spec is a scalar", "42\n", ["eval", "{spec}"], 3, "not a int"),
    ("empty spec", "", ["eval", "{spec}"], 3, "spec.yaml: the spec is empty"),
    ("duplicate key", POLY + "function: x\n", ["eval", "{spec}"], 3, "duplicate key 'function'"),
    ("spec is a folder", None, ["eval", "{tmp}"], 3, "is a folder, not a spec file"),
    ("missing spec file", None, ["eval", "{tmp}/nope.yaml"], 3, "nope.yaml: no such file"),
    ("not utf-8", "\xff\xfe", ["eval", "{spec}"], 3, "spec.yaml: cannot read"),
    # --- keys
    (
        "unknown key with suggestion",
        POLY + "tangent: [1, 0, 0]\n",
        ["jvp", "{spec}"],
        3,
        "unknown key 'tangent' (did you mean 'tangents'?)",
    ),
    ("unknown key no suggestion", POLY + "zzz: 1\n", ["eval", "{spec}"], 3, "unknown key 'zzz' (known keys: function"),
    ("missing primals", "function: x\n", ["eval", "{spec}"], 3, "spec.yaml: primals: no primals"),
    ("missing function", "primals: {x: 1.0}\n", ["eval", "{spec}"], 3, "spec.yaml: function: no function"),
    ("primals not a mapping", "function: x\nprimals: [1, 2]\n", ["eval", "{spec}"], 3, "spec.yaml: primals: must be a mapping"),
    ("bad primal name", "function: x\nprimals: {my-x: 1.0}\n", ["eval", "{spec}"], 3, "'my-x' is not a valid argument name"),
    ("unknown dtype", POLY + "dtype: float16\n", ["eval", "{spec}"], 3, "spec.yaml: dtype: unknown dtype 'float16'"),
    ("wrt unknown", POLY + "wrt: [y]\n", ["jvp", "{spec}"], 3, "spec.yaml: wrt: 'y' is not a primal; primals are x"),
    (
        "wrt typo",
        "function: x * w\nprimals: {x: 1.0, weight: 2.0}\nwrt: [weigth]\n",
        ["jvp", "{spec}"],
        3,
        "did you mean 'weight'?",
    ),
    ("argnums out of range", POLY + "argnums: [2]\n", ["jvp", "{spec}"], 3, "spec.yaml: argnums: argument 2 is out of range"),
    (
        "cases in a single command",
        POLY + "cases:\n  - name: a\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: cases: this spec holds several cases",
    ),
    (
        "bad mode in spec",
        SCALAR + "tangents: [1, 0, 0]\nmode: fwd\n",
        ["hvp", "{spec}"],
        3,
        "spec.yaml: mode: unknown mode 'fwd'",
    ),
    # --- values
    (
        "ragged list",
        "function: x\nprimals:\n  x: [[1, 2], [3]]\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.x[1]: ragged nested list",
    ),
    (
        "text in a list",
        "function: x\nprimals:\n  x: [1, abc]\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.x[1]: 'abc' is not a number",
    ),
    ("1e400 literal", "function: x\nprimals:\n  x: [1e400]\n", ["eval", "{spec}"], 3, "1e400 overflows float64"),
    ("1e400 string", "function: x\nprimals:\n  x: ['1e400']\n", ["eval", "{spec}"], 3, "primals.x[0]: 1e400 overflows float64"),
    (
        "float32 overflow",
        "function: x\nprimals:\n  x: [1.0e39]\n",
        ["eval", "{spec}"],
        3,
        "primals.x[0]: 1e+39 overflows float32 (set dtype: float64)",
    ),
    ("null value", "function: x\nprimals:\n  x: [1, null]\n", ["eval", "{spec}"], 3, "primals.x[1]: missing value"),
    (
        "integer primal from a file",
        "function: x * 1.0\nprimals:\n  x: {file: ints.npy}\n",
        ["grad", "{spec}"],
        3,
        "primals.x: int64 values cannot be differentiated",
    ),
    (
        "integer primal by dtype",
        "function: x\nprimals:\n  x: {arange: 3, dtype: int32}\n",
        ["jacobian", "{spec}"],
        3,
        "derivatives need floats",
    ),
    (
        "bool primal",
        "function: x\nprimals:\n  x: [true, false]\n",
        ["jacobian", "{spec}"],
        3,
        "primals.x: bool values cannot be differentiated",
    ),
    (
        "unknown constructor option",
        "function: x\nprimals:\n  x: {random: normal, shape: [2], sed: 1}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.sed: unknown option 'sed' for the 'random' constructor (did you mean 'seed'?)",
    ),
    (
        "negative shape",
        "function: x\nprimals:\n  x: {zeros: [-2]}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.zeros: a shape is a list of whole numbers",
    ),
    (
        "missing data file",
        "function: x\nprimals:\n  x: {file: missing.npy}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.file: no such file",
    ),
    (
        "data file wrong shape",
        "function: x\nprimals:\n  x: {file: data.npy, shape: [3, 2]}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.shape: data.npy has shape (2, 3), expected (3, 2)",
    ),
    (
        "npz key missing",
        "function: x\nprimals:\n  x: {file: p.npz, key: w}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.key: p.npz has no array 'w'; it has W (did you mean 'W'?)",
    ),
    (
        "csv not numbers",
        "function: x\nprimals:\n  x: {file: bad.csv}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.file: cannot read bad.csv",
    ),
    (
        "csv number overflows",
        "function: x\nprimals:\n  x: {file: big.csv}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.file: big.csv, line 3: -1e400 is too large for float64",
    ),
    (
        "yaml merge key",
        "base: &b {x: [1.0]}\nfunction: x\nprimals:\n  <<: *b\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: line 4, column 3: merge keys (<<:) are not supported in a spec",
    ),
    (
        "pickled npy",
        "function: x\nprimals:\n  x: {file: obj.npy}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.file: obj.npy holds Python objects, not numbers",
    ),
    # --- tangents and cotangents
    (
        "tangent shape",
        POLY + "tangents: [1, 0, 0, 0]\n",
        ["jvp", "{spec}"],
        3,
        "spec.yaml: tangents: shape (4,) does not match primal x (3,)",
    ),
    (
        "tangent structure",
        TREE + "wrt: [p]\ntangents: [1, 0]\n",
        ["jvp", "{spec}"],
        3,
        "spec.yaml: tangents: expected a mapping with keys W, b",
    ),
    (
        "tangent keys",
        TREE + "wrt: [p]\ntangents: {W: [[1, 0], [0, 1]]}\n",
        ["jvp", "{spec}"],
        3,
        "tangents: keys do not match the primal p: missing b",
    ),
    (
        "tangent leaf shape in a tree",
        TREE + "wrt: [p]\ntangents: {W: [1, 0], b: [0, 0]}\n",
        ["jvp", "{spec}"],
        3,
        "tangents.W: shape (2,) does not match primal p (2, 2)",
    ),
    (
        "tangent batch mismatch",
        TREE + "wrt: [p]\ntangents: {W: {zeros: [4, 2, 2]}, b: {zeros: [3, 2]}}\n",
        ["jvp", "{spec}"],
        3,
        "tangents.b: batch 3 but tangents.W is batch 4",
    ),
    (
        "tangent bool",
        POLY + "tangents: [true, false, true]\n",
        ["jvp", "{spec}"],
        3,
        "tangents: true/false values where the primal x holds float32 numbers",
    ),
    (
        "tangents for two args as one",
        "function: x * w\nprimals: {x: [1.0], w: [2.0]}\nwrt: [x, w]\ntangents: [1.0]\n",
        ["jvp", "{spec}"],
        3,
        "tangents: give one entry per differentiated argument (x, w)",
    ),
    ("missing tangents", POLY, ["jvp", "{spec}"], 3, "spec.yaml: tangents: jvp needs tangents"),
    (
        "cotangent shape",
        POLY + "cotangents: [1, 1]\n",
        ["vjp", "{spec}"],
        3,
        "spec.yaml: cotangents: shape (2,) does not match output (3,)",
    ),
    (
        "cotangent structure for a tuple output",
        f"function: {F}/vector_fns.py:pair\nprimals: {{x: [1.0, 2.0]}}\ncotangents: [1.0, 2.0]\n",
        ["vjp", "{spec}"],
        3,
        "cotangents[0]: shape () does not match output (2,)",
    ),
    # --- the function
    (
        "grad of a vector function",
        POLY,
        ["grad", "{spec}"],
        3,
        "spec.yaml: function: grad needs a function with a scalar output, but it returns shape (3,)",
    ),
    ("hessian of a vector function", POLY, ["hessian", "{spec}"], 3, "hessian needs a function with a scalar output"),
    (
        "hvp of a vector function",
        POLY + "tangents: [1, 0, 0]\n",
        ["hvp", "{spec}"],
        3,
        "hvp needs a function with a scalar output",
    ),
    (
        "grad of a tuple",
        f"function: {F}/vector_fns.py:pair\nprimals: {{x: 1.0}}\n",
        ["grad", "{spec}"],
        3,
        "returns shape (), ()",
    ),
    (
        "function returns None",
        f"function: {F}/vector_fns.py:nothing\nprimals: {{x: 1.0}}\n",
        ["eval", "{spec}"],
        4,
        "spec.yaml: function: the function returned no arrays",
    ),
    (
        "function returns text",
        f"function: {F}/funcs.py:returns_text\nprimals: {{x: 1.0}}\n",
        ["eval", "{spec}"],
        4,
        "returned a str, not an array",
    ),
    (
        "function raises",
        f"function: {F}/funcs.py:raises\nprimals: {{x: 1.0}}\n",
        ["jvp", "{spec}", "-t", "x=1"],
        4,
        "RuntimeError: user code failed here (funcs.py, line 9)",
    ),
    (
        "module missing",
        "function: no_such_pkg.mod:f\nprimals: {x: 1.0}\n",
        ["eval", "{spec}"],
        4,
        "spec.yaml: function: no module named 'no_such_pkg'",
    ),
    (
        "module fails to import",
        f"function: {F}/broken_import.py:f\nprimals: {{x: 1.0}}\n",
        ["eval", "{spec}"],
        4,
        "broken_import.py failed to import: ImportError",
    ),
    (
        "module lacks the function",
        f"function: {F}/funcs.py:cubee\nprimals: {{x: 1.0}}\n",
        ["eval", "{spec}"],
        4,
        "funcs.py has no attribute 'cubee' (did you mean 'cube'?)",
    ),
    ("file missing", "function: nowhere.py:f\nprimals: {x: 1.0}\n", ["eval", "{spec}"], 4, "spec.yaml: function: no such file"),
    (
        "lambda arity",
        "function: 'lambda x, y: x'\nprimals: {x: 1.0}\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals: the function's parameter 'y' has no primal (primals given: x)",
    ),
    ("syntax error", "function: 'x +* 2'\nprimals: {x: 1.0}\n", ["eval", "{spec}"], 4, "function: not a valid Python expression"),
    (
        "forbidden expression",
        "function: \"__import__('os').system('touch CANARY')\"\nprimals: {x: 1.0}\n",
        ["eval", "{spec}"],
        4,
        "expression rejected: name '__import__'",
    ),
    (
        "trace error",
        "function: x @ y\nprimals: {x: [1.0, 2.0], y: [1.0, 2.0, 3.0]}\n",
        ["eval", "{spec}"],
        4,
        "function: the function failed to trace",
    ),
    # --- the command line
    ("bad flag", None, ["jvp", "--frobnicate"], 2, "No such option"),
    ("bad mode flag", POLY, ["jacobian", "{spec}", "--mode", "sideways"], 2, "--mode: unknown mode 'sideways'"),
    (
        "chunk size 0",
        POLY,
        ["jacobian", "{spec}", "--chunk-size", "0"],
        2,
        "--chunk-size: 0 is not a positive whole number or auto",
    ),
    ("no spec and no function", None, ["jvp"], 2, "give a SPEC file, or --fn and --primal"),
    ("primal without =", None, ["eval", "-f", "x", "-p", "x"], 3, "<command line>: --primal: expected NAME=VALUE"),
    ("bad yaml in --primal", None, ["eval", "-f", "x", "-p", "x=[1,"], 3, "<command line>: --primal x: line"),
    ("output folder missing", POLY, ["eval", "{spec}", "-o", "{tmp}/no/such/out.npz"], 3, "folder {tmp}/no/such does not exist"),
    (
        "output unknown format",
        POLY,
        ["eval", "{spec}", "-o", "{tmp}/out.txt"],
        3,
        "unknown output format '.txt' (.npz, .npy, .json)",
    ),
    ("output is a folder", POLY, ["eval", "{spec}", "-o", "{tmp}/sub.npz"], 3, "is a folder"),
    (
        "device not present",
        POLY + "device: gpu\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: device: device 'gpu' requested but JAX sees only: cpu",
    ),
    # --- bounded before anything runs: YAML bombs, depth, rank (exit 3 naming the key)
    (
        "billion laughs in description",
        LAUGHS.format(key="description"),
        ["eval", "{spec}"],
        3,
        "spec.yaml: description.g: the document holds more than 1,000,000 values once its aliases (*name) are expanded",
    ),
    (
        "billion laughs in a primal",
        LAUGHS.format(key="primals:\n  x") + "\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.g: the document holds more than",
    ),
    (
        "recursive alias",
        "function: x\nprimals:\n  x: &a [1.0, *a]\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.x: a recursive alias (a collection that contains itself)",
    ),
    (
        "list 5000 deep",
        "function: x\nprimals:\n  x: " + "[" * 5000 + "1.0" + "]" * 5000 + "\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.x[0][0][0][…]: nested more than 100 levels deep",
    ),
    (
        "aliases 150 deep",
        "description:\n" + "".join(f"  a{i}: &a{i} [*a{i - 1}]\n" if i else "  a0: &a0 [1]\n" for i in range(150)) + POLY,
        ["eval", "{spec}"],
        3,
        "spec.yaml: description.a100: nested more than 100 levels deep once its aliases are expanded",
    ),
    (
        "list 5000 deep on the command line",
        None,
        ["eval", "-f", "x", "-p", "x=" + "[" * 5000 + "1" + "]" * 5000],
        3,
        "<command line>: --primal x: [0][0][0][…]: nested more than 100 levels deep",
    ),
    (
        "rank 65",
        "function: x\nprimals:\n  x: " + "[" * 65 + "1.0" + "]" * 65 + "\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.x: lists nested 65 deep: arrays have at most 64 dimensions",
    ),
    (
        "shape of rank 65",
        "function: x\nprimals:\n  x: {zeros: [" + ", ".join(["1"] * 65) + "]}\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.x.zeros: a shape of 65 dimensions: arrays have at most 64",
    ),
    # --- paths a spec names stay inside its folder (the command line may name any file)
    (
        "data file absolute",
        "function: x\nprimals:\n  x: {file: /etc/hostname}\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.x.file: '/etc/hostname' is an absolute path: a spec names files inside its own folder",
    ),
    (
        "data file in home",
        "function: x\nprimals:\n  x: {file: ~/x.npy}\n",
        ["eval", "{spec}"],
        3,
        "'~/x.npy' is an absolute path",
    ),
    (
        "data file up",
        "function: x\nprimals:\n  x: {file: sub.npz/../../x.npy}\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: primals.x.file: 'sub.npz/../../x.npy' goes up with '..'",
    ),
    (
        "data file linked out",
        "function: x\nprimals:\n  x: {file: out.npy}\n",
        ["eval", "{spec}"],
        3,
        "primals.x.file: 'out.npy' leads outside the spec's folder through a symbolic link",
    ),
    (
        "data file in a tree linked out",
        "function: jnp.sum(p['a'])\nprimals:\n  p: {a: {file: out.npy}}\n",
        ["eval", "{spec}"],
        3,
        "primals.p.a.file: 'out.npy' leads outside",
    ),
    (
        "tangent file linked out",
        POLY + "tangents: {file: out.npy}\n",
        ["jvp", "{spec}"],
        3,
        "spec.yaml: tangents.file: 'out.npy' leads",
    ),
    ("data file a folder", "function: x\nprimals:\n  x: {file: sub.npz}\n", ["eval", "{spec}"], 3, "not a regular file"),
    (
        "plot file absolute",
        "function: x**2\nprimals: {x: [1.0]}\nplot: {file: /tmp/jaxdiff-pic.png}\n",
        ["jacobian", "{spec}"],
        3,
        "spec.yaml: plot.file: '/tmp/jaxdiff-pic.png' is an absolute path",
    ),
    (
        "plot file up",
        "function: x**2\nprimals: {x: [1.0]}\nplot: {file: ../pic.png}\n",
        ["jacobian", "{spec}"],
        3,
        "spec.yaml: plot.file: '../pic.png' goes up with '..'",
    ),
    (
        "plot file missing folder",
        "function: x**2\nprimals: {x: [1.0]}\nplot: {file: nope/pic.png}\n",
        ["jacobian", "{spec}"],
        3,
        "spec.yaml: plot.file: folder",
    ),
    (
        "plot file format",
        "function: x**2\nprimals: {x: [1.0]}\nplot: {file: pic.gif}\n",
        ["jacobian", "{spec}"],
        3,
        "spec.yaml: plot.file: unknown image format '.gif'",
    ),
    (
        "function file up",
        "function: ../f.py:f\nprimals: {x: 1.0}\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: function: '../f.py' goes up with '..'",
    ),
    (
        "function file absolute",
        "function: /usr/lib/f.py:f\nprimals: {x: 1.0}\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: function: '/usr/lib/f.py' is an absolute path",
    ),
    (
        "function file linked out",
        "function: out.py:f\nprimals: {x: 1.0}\n",
        ["eval", "{spec}"],
        3,
        "spec.yaml: function: 'out.py' leads outside the spec's folder",
    ),
    # --- --no-code: module and file functions refused, whatever names them
    (
        "no-code file function",
        "function: funcs.py:cube\nprimals: {x: 1.0}\n",
        ["eval", "{spec}", "--no-code"],
        4,
        "spec.yaml: function: 'funcs.py:cube' is a file function and --no-code is on",
    ),
    (
        "no-code module function",
        None,
        ["eval", "-f", "os:getcwd", "-p", "x=1", "--no-code"],
        4,
        "<command line>: function: 'os:getcwd' is a module function and --no-code is on",
    ),
    (
        "no-code in a case",
        "function: funcs.py:cube\nrun: [eval]\ncases:\n  - primals: {x: 1.0}\n",
        ["run", "{spec}", "--no-code"],
        4,
        "spec.yaml: cases[0]: function: 'funcs.py:cube' is a file function",
    ),
    # --- a user's function that tries to end the process
    (
        "function calls sys.exit",
        "function: exits.py:exits\nprimals: {x: 1.0}\n",
        ["eval", "{spec}"],
        4,
        "spec.yaml: function: the function raised SystemExit: 3 (exits.py, line 10)",
    ),
    (
        "module calls sys.exit on import",
        "function: exits_on_import.py:f\nprimals: {x: 1.0}\n",
        ["eval", "{spec}"],
        4,
        "exits_on_import.py failed to import: SystemExit: 7 (exits_on_import.py, line 3)",
    ),
]


def _files(tmp: Path) -> None:
    for name in ("funcs.py", "vector_fns.py", "broken_import.py", "exits.py", "exits_on_import.py"):
        shutil.copy(ASSETS / name, tmp / name)
    os.symlink(ASSETS / "funcs.py", tmp / "out.py")  # symbolic links that lead out of the folder
    os.symlink(ASSETS / "funcs.py", tmp / "out.npy")
    np.save(tmp / "ints.npy", np.arange(3))
    np.save(tmp / "data.npy", np.zeros((2, 3)))
    np.save(tmp / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(tmp / "p.npz", W=np.ones(2))
    (tmp / "bad.csv").write_text("a,b\nc,d\n")
    (tmp / "big.csv").write_text("1.0,inf\n# a comment\n-1e400,2.0\n")  # inf is one; -1e400 overflows
    (tmp / "sub.npz").mkdir()


def _fill(text: str, fill: dict[str, str]) -> str:
    """Fill {spec}, {tmp}, {assets}; YAML's own braces stay (str.format would choke on them)."""
    for key, value in fill.items():
        text = text.replace("{" + key + "}", value)
    return text


def _snapshot(tmp: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in tmp.rglob("*")}


def test_catalogue_is_big_enough() -> None:
    assert len(CATALOGUE) >= 100
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize(("name", "text", "args", "code", "message"), CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input(
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    text: str | None,
    args: list[str],
    code: int,
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # importing a copied module writes nothing
    _files(tmp_path)
    spec = tmp_path / "spec.yaml"
    fill = {"spec": str(spec), "tmp": str(tmp_path), "assets": str(ASSETS)}
    if text is not None:
        if name == "not utf-8":
            spec.write_bytes(b"function: \xff\xfe\n")
        else:
            spec.write_text(_fill(text, fill))
    before = _snapshot(tmp_path)
    ran = cli(*[_fill(a, fill) for a in args])
    assert ran.exit_code == code, (ran.stdout, ran.stderr)
    message = _fill(message, fill)
    assert message in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    assert ran.stdout == ""
    if code != 2:  # usage errors are Typer's own box; ours are one line naming where
        assert ran.stderr.startswith("error: ") and ran.stderr.count("\n") == 1, ran.stderr
        assert "spec.yaml" in ran.stderr or "<command line>" in ran.stderr or str(tmp_path) in ran.stderr
    assert _snapshot(tmp_path) == before  # nothing was written, nothing ran
    assert not (tmp_path / "CANARY").exists()
    assert os.getcwd() == str(tmp_path)


def test_nan_and_inf_strings_are_read_as_ieee_values(cli: Cli) -> None:
    """`nan`, `inf`, `-inf` (and YAML's .nan, .inf) are IEEE values: the result says where they lead."""
    ran = cli("eval", "-f", "x * 1", "-p", "x=[nan, inf, -inf, .nan, 1]", "--json")
    assert ran.exit_code == ExitCode.OK
    doc = ran.json()
    assert doc["inputs"]["primals.x"]["data"] == ["NaN", "Infinity", "-Infinity", "NaN", 1.0]
    assert doc["warnings"] == ["value[0] is nan (the first non-finite entry)"]
    assert cli("eval", "-f", "x * 1", "-p", "x=[nan]", "--check-finite").exit_code == ExitCode.NON_FINITE


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_a_spec_that_is_not_a_regular_file_is_refused_without_reading(cli: Cli, tmp_path: Path, kind: str) -> None:
    path = "/dev/zero"
    if kind == "fifo":
        path = str(tmp_path / "spec.yaml")
        os.mkfifo(path)  # nobody writes to it: opening it must not wait for a writer
    t0 = time.monotonic()
    ran = cli("eval", path)
    assert time.monotonic() - t0 < 5
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stderr
    assert ran.stderr == f"error: {path}: is not a regular file (a device, FIFO or socket) (a spec is a YAML file)\n"
    ran = cli("check", path, "--json")  # check reports it and goes on
    assert ran.exit_code == ExitCode.BAD_INPUT and "is not a regular file" in ran.json()["specs"][0]["error"]["message"]


def test_a_spec_above_the_size_limit_is_refused_before_parsing(cli: Cli, tmp_path: Path) -> None:
    from jaxdiff_cli.inputs.files import MAX_SPEC_BYTES

    spec = tmp_path / "big.yaml"
    with spec.open("wb") as f:
        f.truncate(MAX_SPEC_BYTES + 1)  # sparse: no 16 MiB written
    ran = cli("eval", str(spec))
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert ran.stderr.startswith(f"error: {spec}: larger than 16 MiB (put large arrays in .npy/.npz files")


@pytest.mark.parametrize(
    ("expect", "where", "message"),
    [
        ("value: [2.0]\n  rtol: .inf", "expect.rtol", "a tolerance is a finite number >= 0"),
        ("value: [2.0]\n  rtol: 1.0", "expect.rtol", "rtol 1 would accept anything within 100% of the expected value"),
        ("value: [2.0]\n  atol: .nan", "expect.atol", "a tolerance is a finite number >= 0"),
        ("value: [2.0]\n  atol: -1", "expect.atol", "a tolerance is a finite number >= 0"),
        ("value: {value: [2.0], rtol: 1.0e+300}", "expect.value.rtol", "rtol 1e+300 would accept anything"),
        ("value: {value: [2.0], atol: .inf}", "expect.value.atol", "a tolerance is a finite number"),
    ],
)
def test_a_spec_cannot_switch_its_checks_off(cli: Cli, tmp_path: Path, expect: str, where: str, message: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"function: x * 2\nprimals: {{x: [1.0]}}\nexpect:\n  {expect}\n")
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT, ran.stdout
    assert ran.json()["specs"][0]["error"]["message"].startswith(f"{spec}: {where}: {message}")


def test_golden_values_stay_inside_the_spec_folder(cli: Cli, tmp_path: Path) -> None:
    np.savez(tmp_path / "g.golden.npz", value=np.array([2.0]))
    (tmp_path / "sub").mkdir()
    spec = tmp_path / "sub" / "spec.yaml"
    spec.write_text("function: x * 2\nprimals: {x: [1.0]}\nexpect:\n  value: {file: ../g.golden.npz, key: value}\n")
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT
    assert "expect.value.file: '../g.golden.npz' goes up with '..'" in ran.json()["specs"][0]["error"]["message"]
    spec.write_text("function: x * 2\nprimals: {x: [1.0]}\nexpect:\n  value: {file: g.golden.npz, key: value}\n")
    (tmp_path / "sub" / "g.golden.npz").symlink_to(tmp_path / "g.golden.npz")
    ran = cli("check", spec, "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT and "leads outside the spec's folder" in ran.stdout


def test_files_inside_the_folder_and_on_the_command_line_are_read(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    np.save(tmp_path / "data" / "x.npy", np.array([1.0, 2.0]))
    (tmp_path / "link.npy").symlink_to(tmp_path / "data" / "x.npy")  # a link that stays inside
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    np.save(elsewhere / "w.npy", np.array([3.0, 4.0]))
    spec = tmp_path / "spec.yaml"
    spec.write_text("function: x + w\nprimals:\n  x: {file: data/x.npy}\n  w: {file: link.npy}\n")
    assert cli("eval", spec, "--json").outputs()["value"].tolist() == [2.0, 4.0]
    monkeypatch.chdir(elsewhere)
    ran = cli("eval", spec, "-p", f"w={{file: {elsewhere / 'w.npy'}}}", "--json")  # typed by the user: trusted
    assert ran.exit_code == ExitCode.OK, ran.stderr
    assert ran.outputs()["value"].tolist() == [4.0, 6.0]
    ran = cli("eval", "-f", f"{ASSETS}/funcs.py:cube", "-p", "x=2.0", "--json")
    assert ran.exit_code == ExitCode.OK and ran.outputs()["value"].tolist() == 8.0


@pytest.mark.parametrize(
    "text",
    [
        LAUGHS.format(key="description"),
        LAUGHS.format(key="expect") + "primals: {x: 1.0}\n",
        "function: x\nprimals:\n  x: " + "[" * 5000 + "1.0" + "]" * 5000 + "\n",
        "function: x\nprimals:\n  x: &a [1.0, *a]\n",
    ],
    ids=["laughs in description", "laughs in expect", "5000 deep", "recursive"],
)
def test_yaml_bombs_are_refused_within_a_second(cli: Cli, tmp_path: Path, text: str) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(text)
    for command in (["eval", str(spec)], ["check", str(spec), "--json"]):
        t0 = time.monotonic()
        ran = cli(*command)
        assert time.monotonic() - t0 < 5  # generous for a loaded machine: about 0.2 s here
        assert ran.exit_code == ExitCode.BAD_INPUT, ran.stderr + ran.stdout


# --------------------------------------------------------------------------- a function JAX cannot trace

BRANCH_HINT = "a Python branch on them is not differentiable here: use jnp.where(x > 0, x**2, 0.0)"


@pytest.mark.parametrize("command", ["grad", "eval", "jacobian"])
def test_a_python_if_on_a_traced_value_is_one_line_with_the_rewrite(cli: Cli, command: str) -> None:
    ran = cli(command, "-f", "lambda x: x ** 2 if x > 0 else 0", "-p", "x=1.0")
    assert ran.exit_code == ExitCode.FUNCTION and ran.stderr.count("\n") == 1, ran.stderr
    assert ran.stderr.startswith(
        "error: <command line>: function: the function failed to trace: a Python if, and, or, not or bool() on a"
        " traced value (TracerBoolConversionError; <jaxdiff expression>, line 1)"
    )
    assert BRANCH_HINT in ran.stderr and "lax.cond" in ran.stderr
    for internal in ("\\n", "jaxdiff_cli/", "args[0]", "p[0]", "docs.jax.dev"):
        assert internal not in ran.stderr, internal


def test_the_same_in_a_file_function_checked_names_its_line(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "f.py").write_text("def f(x):\n    if x.sum() > 0:\n        return x.sum() ** 2\n    return x.sum()\n")
    (tmp_path / "s.yaml").write_text("function: f.py:f\nprimals: {x: [1.0, 2.0]}\n")
    ran = cli("check", tmp_path / "s.yaml", "--json")
    assert ran.exit_code == ExitCode.FUNCTION
    message = ran.json()["specs"][0]["error"]["message"]
    assert "(TracerBoolConversionError; f.py, line 2)" in message and BRANCH_HINT in message, message


@pytest.mark.parametrize(
    ("fn", "said", "hint"),
    [
        ("lambda x: x[int(x[0])]", "a concrete Python value (int(), float(), a shape, a loop count)", "x.astype(jnp.int32)"),
        ("lambda x: jnp.zeros(x)", "Shapes must be 1D sequences of concrete values", "shapes and Python control flow"),
    ],
)
def test_other_concrete_values_from_traced_ones_get_their_remedy(cli: Cli, fn: str, said: str, hint: str) -> None:
    ran = cli("grad", "-f", fn, "-p", "x=[1.0, 2.0]" if "[" in fn else "x=2.0")
    assert ran.exit_code == ExitCode.FUNCTION and ran.stderr.count("\n") == 1
    assert said in ran.stderr and hint in ran.stderr, ran.stderr
    assert "\\n" not in ran.stderr and "If using `jit`" not in ran.stderr


def test_an_integer_argument_in_a_float_operation_says_it_is_an_integer(cli: Cli) -> None:
    ran = cli("grad", "-f", "lambda x, s: jnp.sum(x * s**-1)", "-p", "x=[1.0,2.0]", "-p", "s=2")
    assert ran.exit_code == ExitCode.FUNCTION and ran.stderr.count("\n") == 1
    assert "Integers cannot be raised to negative powers" in ran.stderr
    assert "(s holds int32: whole numbers for an argument that is not differentiated keep an integer dtype" in ran.stderr
    assert "write s: 2.0 in the spec (-p s=2.0))" in ran.stderr
    # the rewrite the hint gives works: d/dx sum(x / 2) = 1/2
    fixed = cli("grad", "-f", "lambda x, s: jnp.sum(x * s**-1)", "-p", "x=[1.0,2.0]", "-p", "s=2.0", "--json")
    assert fixed.exit_code == ExitCode.OK and list(fixed.outputs()["grad.x"]) == [0.5, 0.5]


def test_no_integer_hint_where_no_argument_is_an_integer(cli: Cli) -> None:
    ran = cli("grad", "-f", "lambda x: jnp.sum(x * jnp.arange(2) ** -1)", "-p", "x=[1.0,2.0]")
    assert ran.exit_code == ExitCode.FUNCTION and "Integers cannot be raised" in ran.stderr and "holds int32" not in ran.stderr


# --------------------------------------------------------------------------- every path a spec names, attacked

# Each key a spec (or -p) names a file with: the command that reads it, the spec text with NAME where the
# path goes, the suffix the file needs, and the key path an error must name.
PATH_KEYS: dict[str, tuple[list[str], str, str, str]] = {
    "function": (["eval"], 'function: "NAME:f"\nprimals: {x: 1.0}\n', ".py", "spec.yaml: function: "),
    "primals": (["eval"], 'function: x * 2\nprimals: {x: {file: "NAME"}}\n', ".npy", "spec.yaml: primals.x.file: "),
    "tangents": (
        ["jvp"],
        'function: x * 2\nprimals: {x: [1.0]}\ntangents: {file: "NAME"}\n',
        ".npy",
        "spec.yaml: tangents.file: ",
    ),
    "cotangents": (
        ["vjp"],
        'function: x * 2\nprimals: {x: [1.0]}\ncotangents: {file: "NAME"}\n',
        ".npy",
        "spec.yaml: cotangents.file: ",
    ),
    "expect value": (
        ["check", "--json"],
        'function: x * 2\nprimals: {x: [1.0]}\nexpect: {value: {file: "NAME"}}\n',
        ".npy",
        "spec.yaml: expect.value.file: ",
    ),
    "expect sparse": (  # an .npz alone is read as a scipy sparse matrix first
        ["check", "--json"],
        'function: x * 2\nprimals: {x: [1.0]}\nexpect: {jacobian: {file: "NAME"}}\n',
        ".npz",
        "spec.yaml: expect.jacobian.file: ",
    ),
    "plot.file": (["eval"], 'function: x * 2\nprimals: {x: [1.0]}\nplot: {file: "NAME"}\n', ".png", "spec.yaml: plot.file: "),
    "-p file": (["eval", "-f", "x * 2", "-p", 'x={file: "NAME"}'], "", ".npy", "<command line>: --primal x.file: "),
}
BAD_PATHS = ["nul", "escape", "newline", "folder", "dangling link", "fifo", "/dev/zero", "long name"]


def _bad_path(kind: str, tmp: Path, suffix: str) -> str:
    """A path of ``kind`` in ``tmp`` (made there), written as YAML's double-quoted text."""
    if kind == "nul":
        return f"a\\0b{suffix}"
    if kind == "escape":
        return f"a\\e[31mb{suffix}"
    if kind == "newline":
        return f"a\\n::error::b{suffix}"
    name = f"bad{suffix}"
    if kind == "folder":
        (tmp / name).mkdir()
    elif kind == "dangling link":
        (tmp / name).symlink_to(tmp / "nothing.npy")
    elif kind == "fifo":
        os.mkfifo(tmp / name)  # nobody writes: reading it would wait forever
    elif kind == "/dev/zero":
        (tmp / name).symlink_to("/dev/zero")  # endless: out of the folder for a spec, a device for -p
    elif kind == "long name":
        name = "x" * 300 + suffix
    return name


@pytest.mark.parametrize("kind", BAD_PATHS)
@pytest.mark.parametrize("key", list(PATH_KEYS))
def test_every_path_a_spec_names_refuses_every_odd_file(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, kind: str
) -> None:
    """NUL and control characters, folders, dangling links, FIFOs, devices and over-long names, in each
    path-like key: exit 3 within seconds (a FIFO is not waited on), one line naming the key, no traceback."""
    monkeypatch.chdir(tmp_path)
    command, text, suffix, at = PATH_KEYS[key]
    name = _bad_path(kind, tmp_path, suffix)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text.replace("NAME", name))
    args = [a.replace("NAME", name) for a in command]
    t0 = time.monotonic()
    ran = cli(*args, *([spec] if text else []))
    assert time.monotonic() - t0 < 10
    assert ran.exit_code == 3, (ran.stdout, ran.stderr)
    assert "Traceback" not in ran.stdout + ran.stderr and "internal error" not in ran.stdout + ran.stderr
    if "--json" in command:
        message = ran.json()["specs"][0]["error"]["message"]
        assert message.startswith(f"{spec}: {at.removeprefix('spec.yaml: ')}"), message
    else:
        assert ran.stdout == "" and ran.stderr.count("\n") == 1, ran.stderr
        assert ran.stderr.startswith(f"error: {spec}: {at.removeprefix('spec.yaml: ')}" if text else f"error: {at}"), ran.stderr
    shown = ran.stdout + ran.stderr
    assert "\x00" not in shown and "\x1b" not in shown and "\n::error::" not in shown


def test_a_bad_path_in_one_spec_of_a_check_leaves_the_others_checked(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text('function: x * 2\nprimals: {x: [1.0]}\nplot: {file: "a\\0.png"}\n')
    (tmp_path / "b.yaml").write_text('function: x * 2\nprimals: {x: [1.0]}\nexpect: {value: {file: "b\\0.npy"}}\n')
    (tmp_path / "c.yaml").write_text('function: "c\\0.py:f"\nprimals: {x: 1.0}\n')
    sparse = tmp_path / "s.npz"
    np.savez(sparse, format=np.array([b"coo", b"csr"]), shape=np.array([1, 1]), data=np.ones(1), row=[0], col=[0])
    (tmp_path / "d.yaml").write_text("function: x * 2\nprimals: {x: [1.0]}\nexpect: {jacobian: {file: s.npz}}\n")
    (tmp_path / "good.yaml").write_text("function: x * 2\nprimals: {x: [1.0]}\nexpect: {value: [2.0]}\n")
    ran = cli("check", *(tmp_path / f"{n}.yaml" for n in "abcd"), tmp_path / "good.yaml", "--json")
    assert ran.exit_code == 3, ran.stdout
    specs = ran.json()["specs"]
    keys = ["plot.file", "expect.value.file", "function", "expect.jacobian.file"]
    for doc, key in zip(specs, keys):
        assert doc["error"]["message"].startswith(f"{doc['spec']}: {key}: "), doc["error"]
    assert "its format member has shape (2,), not one word" in specs[3]["error"]["message"]
    assert specs[4]["passed"] and "error" not in specs[4]


def test_a_folder_named_like_a_golden_file_is_a_bad_spec_folder(cli: Cli, tmp_path: Path) -> None:
    """check --update writes SPEC.golden.npz (values of more than 64 entries) and SPEC.golden.NAME.npz
    (sparse results): a folder or FIFO in their place is exit 3 naming expect, before anything is written."""
    spec = tmp_path / "big.yaml"
    text = "function: x * 2\nprimals: {x: {ones: [70]}}\n"
    spec.write_text(text)
    (tmp_path / "big.golden.npz").mkdir()
    os.mkfifo(tmp_path / "sp.golden.jacobian.npz")
    sparse = tmp_path / "sp.yaml"
    sparse.write_text("function: x * 2\nprimals: {x: {ones: [9]}}\nsparse: true\n")
    other = tmp_path / "other.yaml"
    other.write_text("function: x * 3\nprimals: {x: [1.0]}\n")
    ran = cli("check", spec, sparse, other, "--update", "--json")
    assert ran.exit_code == 3, ran.stdout
    specs = ran.json()["specs"]
    assert specs[0]["error"]["message"] == f"{spec}: expect: not a regular file: {tmp_path / 'big.golden.npz'} is a folder"
    fifo = tmp_path / "sp.golden.jacobian.npz"
    assert specs[1]["error"]["message"] == f"{sparse}: expect: not a regular file: {fifo} is a device, FIFO or socket"
    assert spec.read_text() == text  # nothing written
    assert "expect:" in other.read_text()  # the other spec was still recorded


# --------------------------------------------------------------------------- data files, sized in bytes from their headers


def npy_bytes(
    descr: Any, shape: tuple[int, ...], data: bytes = b"", version: tuple[int, int] = (1, 0), length: int | None = None
) -> bytes:
    """An .npy file declaring ``descr`` and ``shape`` with any ``data`` (none: a header that lies)."""
    import struct

    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode("latin-1") + b"\n"
    size = struct.pack("<H" if version == (1, 0) else "<I", len(header) if length is None else length)
    return b"\x93NUMPY" + bytes(version) + size + header + data


def npz_file(path: Path, members: list[tuple[str, bytes]], compress: bool = True) -> None:
    import warnings
    import zipfile

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate names these attacks need
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
            for name, data in members:
                archive.writestr(name, data)


ONE = npy_bytes("<f8", (1,), np.array([5.0]).tobytes())
# (id, file name, its bytes, the message)
DATA_ATTACKS: list[tuple[str, str, Any, str]] = [
    # 17 strings of 256 MiB each: 4 GiB declared by a header of 100 bytes (the 4.4 MB .npz)
    (
        "string dtype npz",
        "s.npz",
        [("x.npy", npy_bytes("<U67108864", (17,)))],
        "s.npz[x] holds text (<U67108864) data, not numbers",
    ),
    ("string dtype npy", "s.npy", npy_bytes("|S268435456", (17,)), "s.npy holds byte string (|S268435456) data, not numbers"),
    ("structured dtype", "v.npy", npy_bytes([("a", "<f8"), ("b", "<i4")], (2,)), "v.npy holds structured (void)"),
    ("void dtype", "v.npy", npy_bytes("|V16", (2,)), "v.npy holds structured (void) (|V16) data, not numbers"),
    ("datetime dtype", "t.npy", npy_bytes("<M8[s]", (2,)), "t.npy holds datetime (<M8[s]) data, not numbers"),
    ("timedelta dtype", "t.npy", npy_bytes("<m8[s]", (2,)), "t.npy holds timedelta"),
    ("object dtype", "o.npy", npy_bytes("|O", (2,)), "o.npy holds Python objects, not numbers"),
    ("subarray dtype", "a.npy", npy_bytes(("<f8", (4,)), (2,)), "not numbers"),
    # 2^28 complex128 entries: few enough elements, 4 GiB of bytes
    ("bytes over the limit", "c.npy", npy_bytes("<c16", (2**28,)), "c.npy holds 4,294,967,296 bytes; at most 2,147,483,648"),
    ("elements over the limit", "b.npy", npy_bytes("|b1", (2**29,)), "b.npy holds 536,870,912 elements; at most 268,435,456"),
    ("negative dimension", "n.npy", npy_bytes("<f8", (-1, 4)), "n.npy has a negative dimension"),
    ("65 dimensions", "d.npy", npy_bytes("<f8", (1,) * 65), "d.npy has 65 dimensions; at most 64"),
    (
        "header of 4 GiB",
        "h.npy",
        npy_bytes("<f8", (1,), version=(2, 0), length=2**32 - 1),
        "h.npy has a header of 4,294,967,295 bytes",
    ),
    ("header of an odd version", "h.npy", npy_bytes("<f8", (1,), version=(9, 0)), "h.npy is an .npy file of version 9.0"),
    ("header not ascii", "h.npy", b"\x93NUMPY\x03\x00\x08\x00\x00\x00{'\xc3\xa9':1}", "h.npy has a header that is not ASCII"),
    ("malformed header", "h.npy", b"\x93NUMPY\x01\x00\x05\x00{'a':", "h.npy has a malformed header (TokenError"),
    ("truncated data", "t.npy", npy_bytes("<f8", (1000,), b"\0" * 80), "t.npy is truncated: 80 of its 8,000 bytes of data"),
    ("data after the array", "t.npy", ONE + b"\0" * 8, "t.npy has data after its array"),
    (
        "a member twice by name",
        "d.npz",
        [("x.npy", ONE), ("x.npy", npy_bytes("<U9", (1,)))],
        "d.npz holds two members named 'x.npy'",
    ),
    # np.load reads `x` for both: it would check one and load the other
    (
        "a member twice by key",
        "d.npz",
        [("x.npy", ONE), ("x", npy_bytes("<U9", (1,)))],
        "d.npz holds 'x', which is not an .npy array",
    ),
    (
        "a member that is no .npy",
        "d.npz",
        [("x.npy", ONE), ("notes.txt", b"hello")],
        "d.npz holds 'notes.txt', which is not an .npy",
    ),
    ("a folder member", "d.npz", [("x.npy", ONE), ("sub/", b"")], "d.npz holds 'sub/', which is not an .npy array"),
    ("a member name with a control character", "d.npz", [("x\x1b.npy", ONE)], "a control character: 'x\\x1b.npy'"),
    ("no members", "e.npz", [], "e.npz holds no arrays"),
    # end records alone: zipfile would list every entry they announce before any check could run
    (
        "zip of 50,000 entries",
        "z.npz",
        b"PK\x05\x06" + struct.pack("<4HLLH", 0, 0, 50_000, 50_000, 46 * 50_000, 0, 0),
        "z.npz holds 50,000 arrays; at most 10,000",
    ),
    (
        "zip directory of 1 GB",
        "z.npz",
        b"PK\x05\x06" + struct.pack("<4HLLH", 0, 0, 2, 2, 10**9, 0, 0),
        "z.npz has a directory of 1,000,000,000 bytes",
    ),
    (
        "zip64 of a million entries",
        "z.npz",
        b"PK\x06\x06"
        + struct.pack("<QHHLLQQQQ", 44, 45, 45, 0, 0, 10**6, 10**6, 46 * 10**6, 0)
        + b"PK\x06\x07"
        + struct.pack("<LQL", 0, 0, 1)
        + b"PK\x05\x06"
        + struct.pack("<4HLLH", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0),
        "z.npz holds 1,000,000 arrays; at most 10,000",
    ),
    ("broken archive", "b.npz", b"PK\x03\x04 not a zip", "cannot read b.npz: BadZipFile"),
    ("format member too long", "f.npz", [("format.npy", npy_bytes("<U1000", (1,), b"\0" * 4000))], "f.npz[format] holds text"),
    ("csv of text", "t.csv", b"a,b\n", "cannot read t.csv: ValueError"),
    ("matrix market", "m.mtx", b"%%MatrixMarket matrix coordinate real general\n1 1 1\n1 1 2.0\n", "unknown file type '.mtx'"),
]


@pytest.mark.parametrize(("name", "file", "content", "message"), DATA_ATTACKS, ids=[a[0] for a in DATA_ATTACKS])
@pytest.mark.parametrize("where", ["primals", "expect"])
def test_data_files_are_refused_from_their_headers(
    cli: Cli, tmp_path: Path, where: str, name: str, file: str, content: Any, message: str
) -> None:
    """Each refused within seconds and a few MiB (the 4 GiB ones from the header alone: nothing is
    allocated or inflated), exit 3 naming the key, the same as a primal and as an expected value."""
    import tracemalloc

    path = tmp_path / file
    if isinstance(content, list):
        npz_file(path, content)
    else:
        path.write_bytes(content)
    spec = tmp_path / "spec.yaml"
    key = ", key: x" if file.endswith(".npz") and name != "no members" and "format" not in name else ""
    value = f"{{file: {file}{key}}}"
    cli("eval", "-f", "x", "-p", "x=1.0")  # the imports of a first run are not the file's
    tracemalloc.start()
    if where == "primals":
        spec.write_text(f"function: x * 2\nprimals: {{x: {value}}}\n")
        t0 = time.monotonic()
        ran = cli("eval", spec)
        out = ran.stderr
        assert ran.stdout == "" and out.count("\n") == 1
    else:
        spec.write_text(f"function: x * 2\nprimals: {{x: [1.0]}}\nexpect: {{value: {value}}}\n")
        t0 = time.monotonic()
        ran = cli("check", spec, "--json")
        out = ran.json()["specs"][0]["error"]["message"]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 2**25, peak  # NumPy's arrays are traced: np.load allocated the declared 4 GiB first
    assert time.monotonic() - t0 < 10
    assert ran.exit_code == 3, out
    assert message in out, out
    assert f"{where}." in out and "Traceback" not in out


def test_a_zip_bomb_member_is_refused_by_its_size_and_never_inflated_past_its_header(cli: Cli, tmp_path: Path) -> None:
    """A member whose header says 8 bytes, followed by 64 MiB of zeros (a 64 KB deflated member): the
    read stops after the 8 bytes and refuses the rest (np.save never writes it; np.load ignored it)."""
    import tracemalloc

    bomb = tmp_path / "bomb.npz"
    npz_file(bomb, [("x.npy", ONE + b"\0" * 2**26)])
    assert bomb.stat().st_size < 2**20
    tracemalloc.start()
    try:
        ran = cli("eval", "-f", "x * 2", "-p", f"x={{file: {bomb}, key: x}}")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert ran.exit_code == 3 and "bomb.npz[x] has data after its array" in ran.stderr, ran.stderr
    assert peak < 2**24, peak  # nothing near the 64 MiB was inflated


# --------------------------------------------------------------------------- a spec's data files together

ALIASES = {
    # check_sizes refuses the total once a primal is built: at the fourth alias (x is the fifth entry)
    "five primals": (
        "function: x + a + b + c + d + e\nwrt: [x]\nprimals:\n  x: 1.0\n  a: &f {file: big.npz, key: a}\n"
        "  b: *f\n  c: *f\n  d: *f\n  e: *f\n",
        "the primals hold 268,435,457 entries",
    ),
    # within one primal only the budget sees the total, charged from the header before each read
    "one primal's list": (
        "function: x + a[0]\nwrt: [x]\nprimals:\n  x: 1.0\n  a: [&f {file: big.npz, key: a}, *f, *f, *f, *f]\n",
        "big.npz[a] takes the data files of this spec past 268,435,456 entries",
    ),
}


@pytest.mark.parametrize("form", ALIASES)
def test_one_file_named_many_times_is_read_once_and_charged_each_time(cli: Cli, tmp_path: Path, form: str) -> None:
    """YAML aliases binding one 65 KB .npz of 2^26 int8 zeros five times: each file was bounded alone
    and the total only after all were read (571 MB). Now the file is read once and each use is
    charged to the spec's budget: refused with one array in memory."""
    import tracemalloc

    spec, message = ALIASES[form]
    np.savez_compressed(tmp_path / "big.npz", a=np.zeros(2**26, np.int8))
    assert (tmp_path / "big.npz").stat().st_size < 2**17
    (tmp_path / "spec.yaml").write_text(spec)
    cli("eval", "-f", "x", "-p", "x=1.0")  # the imports of a first run are not the file's
    tracemalloc.start()
    ran = cli("eval", tmp_path / "spec.yaml")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ran.exit_code == 3, ran.stderr
    assert message in ran.stderr and "primals" in ran.stderr, ran.stderr
    assert ran.stderr.count("\n") == 1 and "Traceback" not in ran.stderr
    assert peak < 2**26 + 2**24, peak  # one copy of the 64 MiB array (before: one a use, 320 MiB and more)


def test_a_spec_may_read_one_file_twice(cli: Cli, tmp_path: Path) -> None:
    np.save(tmp_path / "v.npy", np.array([1.0, 2.0, 4.0]))
    np.savez(tmp_path / "w.npz", a=np.array([3.0, 5.0, 7.0]), b=np.array([1, 1, 1]))
    (tmp_path / "spec.yaml").write_text(
        "function: a * b + c * d\nprimals:\n  a: &v {file: v.npy}\n  b: *v\n"
        "  c: {file: w.npz, key: a}\n  d: {file: w.npz, key: a}\n"
    )
    ran = cli("eval", tmp_path / "spec.yaml", "--dtype", "float64", "--json")
    assert ran.exit_code == 0, ran.stderr
    assert ran.json()["outputs"]["value"]["data"] == [1.0 + 9.0, 4.0 + 25.0, 16.0 + 49.0]


def test_a_csv_over_the_limit_is_refused_by_its_size(cli: Cli, tmp_path: Path) -> None:
    big = tmp_path / "big.csv"
    with open(big, "wb") as f:
        f.truncate(64 * 2**20 + 1)  # sparse: no disk, and refused before a byte is read
    (tmp_path / "spec.yaml").write_text("function: x * 2\nprimals: {x: {file: big.csv}}\n")
    ran = cli("eval", tmp_path / "spec.yaml")
    assert ran.exit_code == 3 and "primals.x.file" in ran.stderr and "larger than 64 MiB" in ran.stderr, ran.stderr


def test_a_long_csv_row_is_parsed_in_bounded_memory(cli: Cli, tmp_path: Path) -> None:
    """One row of 2^21 zeros (4 MiB): NumPy's parser needs about 17 bytes a byte for one long row (its
    field offsets) and 21 from a decoded str, plus the array; the 64 MiB limit keeps the worst file near 1.1 GB."""
    import tracemalloc

    row = tmp_path / "row.csv"
    row.write_bytes(b"0," * (2**21 - 1) + b"0\n")
    (tmp_path / "spec.yaml").write_text("function: jnp.sum(x)\nprimals: {x: {file: row.csv}}\n")
    cli("eval", "-f", "x", "-p", "x=1.0")
    tracemalloc.start()
    ran = cli("eval", tmp_path / "spec.yaml", "--json")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert ran.exit_code == 0, ran.stderr
    assert ran.json()["outputs"]["value"]["data"] == 0.0
    assert peak < 22 * row.stat().st_size, peak / row.stat().st_size  # 25 from a decoded str
