"""The package's shape: data flows one way, each layer imports only below itself.

    cli -> output -> operations -> checks -> prepare -> (inputs | engine) -> base

An AST walk over every module (imports inside functions count; ``if TYPE_CHECKING:`` imports are
for annotations only and do not). It fails on an import circle, an import that runs up a layer or
across from inputs to engine (or back), a private name imported from another module, typer
outside cli.py, and a mutable Plan. Inside ``inputs/``, the modules stand on floors of their own
(``INPUT_FLOORS``): the YAML reader and file reading at the bottom, with no NumPy or JAX.
"""

from __future__ import annotations

import ast
import dataclasses
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jaxdiff_cli"

# The layer of each module, by dotted name or prefix; higher may import lower, never the reverse.
LAYERS: list[tuple[str, int]] = [
    ("jaxdiff_cli.launcher", 8),  # the `jaxdiff` script: a worker call, else cli.main in-process
    ("jaxdiff_cli.worker.server", 8),  # the worker: runs cli.main in each call's child
    ("jaxdiff_cli.cli", 7),
    ("jaxdiff_cli.pytest_plugin", 7),  # an entry point too: pytest's
    ("jaxdiff_cli.__main__", 7),
    ("jaxdiff_cli.options", 6),  # what a command received -> a Request (beside output: cli.py's helpers)
    ("jaxdiff_cli.output", 6),
    ("jaxdiff_cli.operations", 5),
    ("jaxdiff_cli.checks", 4),
    ("jaxdiff_cli.schema", 4),  # the spec's JSON Schema, from the loader's and the checks' tables
    ("jaxdiff_cli.starter", 4),  # jaxdiff init: a spec written, loaded back and prepared for its shapes
    ("jaxdiff_cli.prepare", 3),
    ("jaxdiff_cli.engine", 2),
    ("jaxdiff_cli.inputs", 1),  # floors of their own inside: INPUT_FLOORS
    ("jaxdiff_cli.errors", 0),  # and Where with its key-path helpers where() and join(): stdlib only
    ("jaxdiff_cli.signals", 0),
    ("jaxdiff_cli.startup", 0),
    ("jaxdiff_cli.atomic", 0),
    ("jaxdiff_cli.encoding", 0),
    ("jaxdiff_cli.helptext", 0),  # the words of --help: data only
    ("jaxdiff_cli.ops", 0),  # the operation table: data only, stdlib only
    ("jaxdiff_cli.target", 0),  # what -o FILE means: stdlib only
    ("jaxdiff_cli.worker", 0),  # where the worker is, its protocol, start/stop/status: stdlib only
    ("jaxdiff_cli", 0),
]
INPUTS_LAYER, ENGINE_LAYER = 1, 2  # side by side: neither imports the other


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts).removesuffix(".__init__")
        out[name] = path
    return out


def layer(name: str) -> int:
    for prefix, rank in LAYERS:
        if name == prefix or name.startswith(prefix + "."):
            return rank
    raise AssertionError(f"{name} has no layer in tests/test_structure.py: give it one")


def _type_checking_only(tree: ast.AST) -> set[int]:
    """Line numbers of imports inside ``if TYPE_CHECKING:`` blocks."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            for inner in node.body:
                for sub in ast.walk(inner):
                    if isinstance(sub, (ast.Import, ast.ImportFrom)):
                        lines.add(sub.lineno)
    return lines


def imports(name: str, path: Path, known: set[str]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for every runtime import of a package module."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_only(tree)
    found = []
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                root = package[: len(package) - (node.level - 1)]
                base = ".".join(root + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                target = full if full in known else base
                if target in known:
                    found.append((target, "" if target == full else alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.append((alias.name, "", node.lineno))
    return found


GRAPH = {name: imports(name, path, set(modules())) for name, path in modules().items()}


def test_no_import_circles() -> None:
    edges = {
        m: {t for t, _, _ in targets if t != m and not m.startswith(t + ".") and t != "jaxdiff_cli"}
        for m, targets in GRAPH.items()
    }

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    circles = sorted(m for m in edges if m in reach(m))
    assert not circles, f"import circle among {circles}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_imports_run_down_the_layers(module: str) -> None:
    mine = layer(module)
    for target, _, line in GRAPH[module]:
        theirs = layer(target)
        same_package = target.rsplit(".", 1)[0] == module.rsplit(".", 1)[0] and "." in module.removeprefix("jaxdiff_cli.")
        if same_package or target == "jaxdiff_cli":
            continue
        assert theirs <= mine, f"{module} (layer {mine}) imports {target} (layer {theirs}) at line {line}: up a layer"
        assert {mine, theirs} != {INPUTS_LAYER, ENGINE_LAYER}, (
            f"{module} imports {target} at line {line}: inputs and engine stay apart"
        )


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_private_names_across_modules(module: str) -> None:
    for target, name, line in GRAPH[module]:
        if target != module and name.startswith("_") and name != "__version__":
            raise AssertionError(f"{module} imports the private {target}.{name} at line {line}")


ENTRY_POINTS = ("jaxdiff_cli.cli", "jaxdiff_cli.pytest_plugin", "jaxdiff_cli.worker.server")  # what a user runs: they show output


def test_only_cli_imports_typer_and_output() -> None:
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            mods = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            if any(m == "typer" or m.startswith("typer.") for m in mods):
                assert name == "jaxdiff_cli.cli", f"{name} imports typer"
    for name in GRAPH:
        for target, _, line in GRAPH[name]:
            if target.startswith("jaxdiff_cli.output"):
                assert name in ENTRY_POINTS or name.startswith("jaxdiff_cli.output"), f"{name} imports {target} (line {line})"


def test_a_plan_is_frozen() -> None:
    from jaxdiff_cli.engine.problem import Plan

    assert dataclasses.is_dataclass(Plan) and Plan.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_the_check_itself_sees_imports_inside_functions() -> None:
    """The walk must see a lazy import, or the tests above prove nothing."""
    cli_targets = {t for t, _, _ in GRAPH["jaxdiff_cli.cli"]}
    assert "jaxdiff_cli.operations" in cli_targets  # imported only inside functions


def test_cli_is_only_the_typer_face() -> None:
    # Its words live in helptext.py and its work in operations.py: what stays is wiring, kept small
    # enough to read in one sitting (it was 1,050 lines doing orchestration, maths and JSON). 530:
    # the `worker` command group and the worker's one-time command build (its work is in worker/).
    text = (PACKAGE / "cli.py").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 530
    assert "import jax" not in text and "json.dumps" not in text and "numpy" not in text


# ----------------------------------------------------------------------------- one place for each decision

OPERATION_NAMES = {"eval", "jvp", "vjp", "grad", "jacobian", "hessian", "hvp", "derivative", "taylor"}
# The operation table (ops.py) is where operations are named; elsewhere a name is ``JACOBIAN.name`` or
# ``OPS[name]``. What still spells one, at most this many times, and why (a new spelling fails the test):
NAMED_ELSEWHERE: dict[str, tuple[int, str]] = {
    "jaxdiff_cli/ops.py": (99, "the table itself"),
    "jaxdiff_cli/engine/taylor.py": (
        6,
        "'jvp' here is the mode of derivative and taylor (nested forward mode), not the operation",
    ),
    "jaxdiff_cli/inputs/expressions/tables.py": (
        5,
        "JAX's transformations an expression may call (jax.grad, jax.jvp, ...) and Python's eval, which it may not",
    ),
    "jaxdiff_cli/inputs/expressions/checker.py": (2, "ast.parse(mode='eval'), and jax.grad named in a hint"),
    "jaxdiff_cli/inputs/expressions/runtime.py": (1, "compile(mode='eval')"),
    "jaxdiff_cli/checks/findings.py": (8, "check's group names in its JSON report and JUnit tests (hvp, hessian, higher_order)"),
    "jaxdiff_cli/checks/higher.py": (
        25,
        "check compares derivative and taylor results by name, and the 'jvp' mode; still to read OPS",
    ),
    "jaxdiff_cli/checks/derivatives.py": (29, "check's findings, labelled by the result they compare; still to read OPS"),
    "jaxdiff_cli/checks/complex_ad.py": (15, "check's findings, labelled by the result they compare; still to read OPS"),
    "jaxdiff_cli/checks/expectations.py": (17, "check --update's list of what to record; still to read OPS"),
}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            found.add(id(body[0].value))
    return found


def test_operations_are_named_in_the_operation_table() -> None:
    counts: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        skip = _docstrings(tree)
        spelled = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value in OPERATION_NAMES and id(n) not in skip]
        if spelled:
            counts[str(path.relative_to(PACKAGE.parent))] = len(spelled)
    for module, count in counts.items():
        allowed, why = NAMED_ELSEWHERE.get(module, (0, ""))
        assert count <= allowed, f"{module} spells an operation's name {count} times: use ops.OPS / ops.JACOBIAN.name"
        assert why


def test_the_operation_table_lists_every_operation() -> None:
    from jaxdiff_cli.ops import OPERATIONS, OPS

    assert set(OPERATIONS) == OPERATION_NAMES == set(OPS)
    for op in OPS.values():
        assert (op.default is None) == (not op.modes) and (op.default is None or op.default in op.modes), op
        assert set(op.timed) <= set(op.modes), op


def test_no_fmt_skip_in_the_package() -> None:
    # ruff lays tables out one entry per line; inputs/expressions.py's two are left to its split (issue 24, change 5).
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if path.name != "expressions.py":
            assert "fmt: skip" not in text, f"{path}: let ruff format lay it out"


def test_only_target_decides_what_an_output_suffix_means() -> None:
    """-o FILE's format is decided once (target.py); elsewhere a suffix is a picture's, a data file's or a report's."""
    others = {
        "target.py",
        "pictures.py",  # --plot-file: .png or .svg
        "matrixfile.py",  # its writer: scipy's .npz or Matrix Market, for a kind Target already checked
        "values.py",  # data files a spec names: .npy, .npz, .csv
        "spec.py",  # spec files
        "pytest_plugin.py",  # the spec files pytest collects
    }
    for path in PACKAGE.rglob("*.py"):
        if path.name not in others:
            assert ".suffix" not in path.read_text(encoding="utf-8"), f"{path} looks at a file suffix: read target.Target"


# The `jaxdiff` client decides whether a worker serves the call before anything else is imported:
# these modules, and everything they import at module level, are the standard library's.
CLIENT = ("jaxdiff_cli.launcher", "jaxdiff_cli.worker.place", "jaxdiff_cli.worker.protocol", "jaxdiff_cli.worker.control")


@pytest.mark.parametrize("module", CLIENT)
def test_the_client_imports_only_the_standard_library_at_module_level(module: str) -> None:
    import sys

    tree = ast.parse(modules()[module].read_text())
    for node in tree.body:  # module level only: the fallback imports cli inside main(), by design
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level == 0
            else []
        )
        for name in names:
            top = name.split(".")[0]
            ours = name == "jaxdiff_cli" or name in CLIENT or name == "jaxdiff_cli.worker"
            assert top in sys.stdlib_module_names or top == "__future__" or ours, f"{module} imports {name}"
        if isinstance(node, ast.If) and not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
            raise AssertionError(f"{module}: a conditional import at module level (line {node.lineno})")


def test_the_client_path_loads_nothing_heavy() -> None:
    """Run for real: with no worker to find, the client has decided, and nothing but the stdlib is loaded."""
    import os
    import subprocess
    import sys
    import tempfile

    probe = (
        "import sys\nfrom jaxdiff_cli import launcher\n"
        "assert launcher.through_worker(['jvp', '-f', 'x', '-p', 'x=1']) is None\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "JAXDIFF_WORKER_DIR": folder}
        env.pop("JAXDIFF_NO_WORKER", None)
        ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert ran.returncode == 0, ran.stderr
    loaded = set(ran.stdout.split())
    assert "jaxdiff_cli" in loaded
    heavy = loaded & {"typer", "click", "rich", "numpy", "jax", "jaxlib", "yaml", "ml_dtypes", "typing"}
    assert not heavy, f"the client path imported {sorted(heavy)}"


# ----------------------------------------------------------------------------- inputs/: one room per concern

# The floors inside inputs/: a module imports only modules of a lower floor, so two on one floor
# (values.py and spec.py) are siblings that never reach into each other. A new module gets a floor here.
INPUT_FLOORS: dict[str, int] = {
    "jaxdiff_cli.inputs": 0,
    "jaxdiff_cli.inputs.yamlfile": 0,  # the bounded YAML 1.2 reader; a key path's line
    "jaxdiff_cli.inputs.expressions": 0,  # the expression language
    "jaxdiff_cli.inputs.datafiles": 0,  # .npy / .npz / .csv read with bounds
    "jaxdiff_cli.inputs.sparsefile": 0,  # scipy's sparse .npz read with NumPy
    "jaxdiff_cli.inputs.files": 1,  # reading a spec; the paths it names confined to its folder
    "jaxdiff_cli.inputs.functions": 1,  # the function's text -> a callable
    "jaxdiff_cli.inputs.spec": 2,  # a spec's keys -> Spec
    "jaxdiff_cli.inputs.values": 2,  # a spec's values -> arrays
    "jaxdiff_cli.inputs.cases": 3,  # cases and run: steps; load_spec, load_cases
    "jaxdiff_cli.inputs.binding": 3,  # primals -> parameters
}


def test_every_input_module_has_a_floor() -> None:
    # The expression package's own modules have their rooms (EXPRESSION_ROOMS, below).
    inputs = {m for m in GRAPH if m.startswith("jaxdiff_cli.inputs") and not m.startswith("jaxdiff_cli.inputs.expressions.")}
    assert inputs == set(INPUT_FLOORS)


@pytest.mark.parametrize("module", sorted(INPUT_FLOORS))
def test_inputs_import_down_their_floors(module: str) -> None:
    for target, _, line in GRAPH[module]:
        if target in INPUT_FLOORS and target != "jaxdiff_cli.inputs":
            assert INPUT_FLOORS[target] < INPUT_FLOORS[module], (
                f"{module} (floor {INPUT_FLOORS[module]}) imports {target} (floor {INPUT_FLOORS[target]}) at line {line}"
            )


def test_values_does_not_reach_into_the_spec_loader() -> None:
    """Key paths (where, join) come from errors.py and file paths from files.py: reading values needs no spec."""
    loader = {"jaxdiff_cli.inputs.spec", "jaxdiff_cli.inputs.cases"}
    assert not loader & {t for t, _, _ in GRAPH["jaxdiff_cli.inputs.values"]}
    assert "jaxdiff_cli.inputs.values" not in {t for t, _, _ in GRAPH["jaxdiff_cli.inputs.spec"]}


def _outside_imports(path: Path) -> set[str]:
    """The top-level names of the modules ``path`` imports from outside the package (inside functions too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    names: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names - {"jaxdiff_cli"}


def _closure(module: str) -> set[str]:
    """``module`` and every package module it imports, directly or not (inside functions too)."""
    seen, todo = {module}, [module]
    while todo:
        for target, _, _ in GRAPH[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("jaxdiff_cli.errors", set()),
        ("jaxdiff_cli.inputs.yamlfile", {"yaml"}),
        ("jaxdiff_cli.inputs.files", {"yaml"}),
    ],
)
def test_the_reader_and_file_reading_import_no_numpy_or_jax(module: str, allowed: set[str]) -> None:
    """A spec is read and its paths checked with the standard library and PyYAML alone, all the way down."""
    paths = modules()
    for name in _closure(module):
        outside = _outside_imports(paths[name]) - set(sys.stdlib_module_names) - {"__future__"}
        assert outside <= allowed, f"{name} (imported by {module}) imports {sorted(outside - allowed)}"


# PyYAML's readers: every spec's text goes through yamlfile's bounded loader, never one of these elsewhere.
_YAML_READERS = {"load", "safe_load", "full_load", "unsafe_load", "load_all", "safe_load_all", "compose", "compose_all"}
_YAML_READERS |= {"parse", "scan", "Loader", "SafeLoader", "FullLoader", "UnsafeLoader", "BaseLoader", "CLoader", "CSafeLoader"}


# Modules that read YAML without it, and why (a new one fails the test).
_OTHER_YAML_READERS = {
    "jaxdiff_cli.checks.record": "check --update's ruamel.yaml round trip, of a spec the bounded reader has read first",
}


def test_only_the_bounded_reader_reads_yaml() -> None:
    for name, path in modules().items():
        if name == "jaxdiff_cli.inputs.yamlfile" or name in _OTHER_YAML_READERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "yaml":
                assert node.attr not in _YAML_READERS, f"{name} reads YAML with yaml.{node.attr}: use yamlfile.parse_yaml"
            if isinstance(node, ast.ImportFrom) and node.module == "yaml":
                assert not {a.name for a in node.names} & _YAML_READERS, f"{name} imports a YAML reader"


# The expression language's rooms (inputs/expressions/): data, then the checker, then the run time;
# the package's face on top. Each imports only rooms before it.
EXPRESSIONS = "jaxdiff_cli.inputs.expressions"
EXPRESSION_ROOMS = [f"{EXPRESSIONS}.tables", f"{EXPRESSIONS}.checker", f"{EXPRESSIONS}.runtime", EXPRESSIONS]


def test_the_expression_rooms_import_one_way() -> None:
    rooms = {m for m in GRAPH if m == EXPRESSIONS or m.startswith(EXPRESSIONS + ".")}
    assert rooms - {f"{EXPRESSIONS}.__main__"} == set(EXPRESSION_ROOMS), "give a new module a place in EXPRESSION_ROOMS"
    for rank, module in enumerate(EXPRESSION_ROOMS):
        for target, _, line in GRAPH[module]:
            if target in EXPRESSION_ROOMS:
                assert EXPRESSION_ROOMS.index(target) < rank, f"{module} imports {target} at line {line}: against the rooms"


def test_the_expression_tables_are_data_only() -> None:
    # Nothing of jaxdiff and no JAX: a change to what expressions may use is a diff to data alone.
    path = PACKAGE / "inputs" / "expressions" / "tables.py"
    assert GRAPH[f"{EXPRESSIONS}.tables"] == []
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert imported <= {"__future__", "collections.abc", "dataclasses"}, imported


def test_checking_an_expression_imports_no_jax() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from jaxdiff_cli.inputs import expressions as e; "
        "e.check('lambda x: jnp.sum(jnp.sin(x))', ('x',), 'f', is_lambda=True); "
        "assert 'jax' not in sys.modules, 'jax imported'"
    )
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
