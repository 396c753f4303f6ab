"""The spec's JSON Schema against the loader: every config is valid, and what the schema refuses the loader refuses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from jaxdiff_cli import schema
from jaxdiff_cli.errors import ExitCode
from jaxdiff_cli.inputs.spec import SPEC_KEYS
from jaxdiff_cli.inputs.values import CONSTRUCTORS
from jaxdiff_cli.inputs.yamlfile import parse_yaml

from .cli.test_bad_inputs import CATALOGUE
from .conftest import CONFIGS, ROOT, Cli

VALIDATOR = jsonschema.Draft7Validator(schema.spec_schema())


def valid(text: str) -> bool:
    return VALIDATOR.is_valid(parse_yaml(text, "spec.yaml"))


def test_the_schema_is_a_valid_draft_07_schema_with_an_id() -> None:
    """Draft-07 with an $id: the form SchemaStore takes without registering a meta-schema."""
    generated = schema.spec_schema()
    assert generated["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert generated["$id"] == schema.SCHEMA_ID and generated["$id"].startswith("https://")
    jsonschema.Draft7Validator.check_schema(generated)
    assert jsonschema.validators.validator_for(generated) is jsonschema.Draft7Validator


def _nodes(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def test_no_ref_has_keywords_beside_it_and_no_type_is_a_list() -> None:
    """Draft-07 ignores what stands beside a $ref (a bound there would be lost), and ajv's strict mode
    refuses a list of types and a required key that is no property of its object."""
    for node in _nodes(schema.spec_schema()):
        assert "$ref" not in node or set(node) == {"$ref"}, node
        assert not isinstance(node.get("type"), list), node
        assert not node.get("$ref", "#/definitions/").startswith("#/$defs"), node
        for key in node.get("required", []):
            assert key in node.get("properties", {}), node


def test_every_table_entry_has_a_schema() -> None:
    """A key or constructor added to the loader's tables needs its schema here (until then: any value)."""
    assert set(schema.KEY_SCHEMAS) == set(SPEC_KEYS)
    assert set(schema.CONSTRUCTOR_SCHEMAS) == set(CONSTRUCTORS)
    assert set(schema.OPTION_SCHEMAS) == set().union(*CONSTRUCTORS.values())
    properties = schema.spec_schema()["properties"]
    assert list(properties) == list(SPEC_KEYS)
    assert all(properties[k]["description"] == SPEC_KEYS[k] for k in SPEC_KEYS)


def test_a_key_new_to_the_table_is_in_the_schema_and_takes_any_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(SPEC_KEYS, "a_new_key", "a key another branch adds")
    generated = schema.spec_schema()
    assert generated["properties"]["a_new_key"] == {"description": "a key another branch adds"}
    validator = jsonschema.Draft7Validator(generated)
    assert validator.is_valid({"function": "x", "a_new_key": {"anything": [1, 2]}})
    assert "a_new_key" in generated["definitions"]["case"]["properties"]


def test_the_shipped_file_is_the_generated_schema() -> None:
    assert schema.SHIPPED.read_text(encoding="utf-8") == schema.schema_text(), "run python -m jaxdiff_cli.schema"


def test_jaxdiff_schema_prints_it(cli: Cli) -> None:
    ran = cli("schema")
    assert ran.exit_code == ExitCode.OK and json.loads(ran.stdout) == schema.spec_schema()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_is_valid(path: Any) -> None:
    data = parse_yaml(path.read_text(), str(path))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]
    assert not errors, errors


def test_the_readme_specs_are_valid() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    specs = [b for b in blocks if b.startswith(("function:", "# yaml-language-server"))]
    assert len(specs) >= 3
    for block in specs:
        assert valid(block), block


# Entries of the bad-input catalogue whose spec the schema can judge alone (not shapes that must
# agree, files, functions or devices): the catalogue shows the loader refuses each.
REFUSED_BY_BOTH = [
    "spec is a list",
    "spec is a scalar",
    "unknown key with suggestion",
    "unknown key no suggestion",
    "primals not a mapping",
    "bad primal name",
    "unknown dtype",
    "text in a list",
    "null value",
    "unknown constructor option",
    "negative shape",
    "shape of rank 65",
]
# More that the loader refuses (tests elsewhere show it), as spec text.
MORE_REFUSED = {
    "wrt and argnums": "function: x\nprimals: {x: 1.0}\nwrt: [x]\nargnums: [0]\n",
    "rtol 1": "function: x\nprimals: {x: 1.0}\nexpect:\n  value: 1.0\n  rtol: 1.0\n",
    # Every numeric limit the loader enforces that JSON Schema can say (issue 22.7):
    "rtol 0.5": "function: x\nprimals: {x: 1.0}\nexpect:\n  value: 1.0\n  rtol: 0.5\n",
    "rtol 0.02 in an entry": "function: x\nprimals: {x: 1.0}\nexpect:\n  value: {value: 1.0, rtol: 0.02}\n",
    "shape too large": "function: x\nprimals:\n  x: {zeros: 268435457}\n",
    "eye too large": "function: x\nprimals:\n  x: {eye: 268435457}\n",
    "linspace num too large": "function: x\nprimals:\n  x: {linspace: [0, 1, 268435457]}\n",
    "linspace num negative": "function: x\nprimals:\n  x: {linspace: [0, 1, -1]}\n",
    "linspace num a fraction": "function: x\nprimals:\n  x: {linspace: [0, 1, 2.5]}\n",
    "split num 0": "function: x\nprimals:\n  x: {random: normal, shape: [2], split: [[0, 0]]}\n",
    "split num too large": "function: x\nprimals:\n  x: {random: normal, shape: [2], split: [[65537, 0]]}\n",
    "split index too large": "function: x\nprimals:\n  x: {random: normal, shape: [2], split: [[65536, 65536]]}\n",
    "split of three": "function: x\nprimals:\n  x: {random: normal, shape: [2], split: [[2, 1, 0]]}\n",
    "seed 2**32": "function: x\nprimals:\n  x: {random: normal, shape: [2], seed: 4294967296}\n",
    "order 33": "function: x\nprimals: {x: 1.0}\norder: 33\n",
    "order 0": "function: x\nprimals: {x: 1.0}\norder: 0\n",
    "rtol inf in an entry": "function: x\nprimals: {x: 1.0}\nexpect:\n  value: {value: 1.0, rtol: .inf}\n",
    "atol -1": "function: x\nprimals: {x: 1.0}\nexpect:\n  value: 1.0\n  atol: -1\n",
    "expect key misspelt": "function: x\nprimals: {x: 1.0}\nexpect:\n  jacobain.x: 1.0\n",
    "expect entry key": "function: x\nprimals: {x: 1.0}\nexpect:\n  value: {value: 1.0, rtoll: 0.1}\n",
    "bad einsum": "function: x\nprimals: {x: [1.0]}\nexpect:\n  jacobian.x: {value: [1.0], einsum: 'ii->>i'}\n",
    "run unknown operation": "function: x\nprimals: {x: 1.0}\nrun: [eval, gradient]\n",
    "run step options": "function: x\nprimals: {x: 1.0}\nrun: [{jacobian: {mode: rev, chunk: 2}}]\n",
    "chunk size 0": "function: x\nprimals: {x: 1.0}\nchunk_size: 0\n",
    "devices none": "function: x\nprimals: {x: 1.0}\ndevices: none\n",
    "plot key": "function: x\nprimals: {x: 1.0}\nplot: {terminal: true, colour: red}\n",
    "case key": "function: x\ncases:\n  - name: a\n    primals: {x: 1.0}\n    tangent: 1.0\n",
    "cases empty": "function: x\nprimals: {x: 1.0}\ncases: []\n",
    "two constructors": "function: x\nprimals:\n  x: {zeros: 3, ones: 3}\n",
    "random distribution": "function: x\nprimals:\n  x: {random: cauchy, shape: [2]}\n",
    "value dtype": "function: x\nprimals:\n  x: {value: 1, dtype: int8}\n",
    "mode": "function: x\nprimals: {x: [1.0]}\nmode: sideways\nexpect:\n  jacobian.x: [[1.0]]\n",
    "has_aux text": "function: x\nprimals: {x: 1.0}\nhas_aux: yes please\n",
}


@pytest.mark.parametrize("name", REFUSED_BY_BOTH)
def test_the_schema_refuses_what_the_catalogue_refuses(name: str) -> None:
    entry = next(c for c in CATALOGUE if c[0] == name)
    assert entry[3] == 3  # the loader refuses it: a bad spec
    assert not valid(str(entry[1])), name


@pytest.mark.parametrize("name", sorted(MORE_REFUSED))
def test_the_schema_refuses_more_that_the_loader_refuses(cli: Cli, tmp_path: Any, name: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(MORE_REFUSED[name])
    ran = cli("check", path, "--json")
    assert ran.exit_code in (2, 3), (name, ran.stdout)  # the loader refuses it ...
    assert not valid(MORE_REFUSED[name]), name  # ... and so does the schema


@pytest.mark.parametrize(
    "text",
    [
        "function: x\nprimals:\n  x: [1, nan, -inf, '1e-3', .inf]\n",
        "function: x\nprimals:\n  p: {W: {random: normal, shape: [2, 2], seed: 1, split: [[3, 1]]}, b: {zeros: 2}}\n",
        "function: x\nprimals:\n  x: [{value: [1, 2]}, {value: [3], dtype: int32}]\n",
        "function: x\nprimals: {x: {file: d.npz, key: W, shape: [2]}}\nwrt: x\nchunk_size: '8'\ndevices: '2'\n",
        "function: x\nprimals: {x: [1.0]}\nexpect:\n  jacobian.x: {value: [2.0], einsum: 'ii->i', rtol: 0.001}\n"
        "  grad.p['a.b']: [1.0]\n  recorded: {jax: 0.4}\n",
        "function: x\nprimals:\nrun: jvp\nplot: true\ndescription: [any, thing]\nname: 3\n",
    ],
)
def test_valid_specs_are_valid(text: str) -> None:
    assert valid(text), text


# Specs the loader accepts, in the forms the README gives for complex values, sparse derivatives and
# orders: `jaxdiff check` passes each (the loader's verdict, and more), and the schema must agree.
ACCEPTED = {
    "complex parts": "function: 'lambda z: jnp.sum(jnp.abs(z)**2)'\nprimals:\n  z: {re: [1, 2], im: [0.5, -1]}\n"
    "dtype: complex64\n",
    "complex part alone": "function: 'lambda z: jnp.sum(jnp.abs(z)**2)'\nprimals:\n  z: {im: 1}\ndtype: complex128\n",
    "complex parts from constructors": "function: 'lambda z: jnp.sum(jnp.abs(z)**2)'\nprimals:\n"
    "  z: {re: {random: normal, shape: [3], seed: 0}, im: {zeros: 3}, dtype: complex64}\ndtype: complex64\n",
    "complex text": "function: 'lambda z: jnp.sum(jnp.abs(z)**2)'\nprimals:\n  z: ['1+2j', 3, 2j]\ndtype: complex64\n",
    "holomorphic": "function: 'lambda z: z**2'\nprimals: {z: {re: [1, 2], im: [0.5, -1]}}\ndtype: complex64\nholomorphic: true\n",
    "sparse": "function: 'lambda x: jnp.sin(x) * x[::-1]'\nprimals: {x: {linspace: [0, 1, 6]}}\nsparse: true\n",
    "order": "function: 'lambda x: jnp.sum(jnp.exp(x))'\nprimals: {x: [0.5, 1.0]}\norder: 3\n"
    "tangents: {x: [1.0, 0.0]}\nmode: auto\n",
    "the limits themselves": "function: 'lambda x, y: jnp.sum(x) + 0.0 * jnp.sum(y)'\nwrt: x\nprimals:\n"
    "  x: {linspace: [0, 1, 5.0]}\n  y: {random: normal, shape: [2], seed: 4294967295, split: [[65536, 65535]]}\n"
    "expect:\n  rtol: 0.01\n  value: {value: 2.5, rtol: 0.01}\n",
    "tangents, cotangents and cases": "function: 'lambda x, w: (x + w) * x**2'\ncotangents: [1.0, 1.0]\ncases:\n"
    "  - name: a\n    primals: {x: [1.0, 2.0], w: [0.5, 0.5]}\n    tangents: {x: [1.0, 0.0]}\n    wrt: [x]\n",
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_specs_the_loader_accepts_are_valid(cli: Cli, tmp_path: Any, name: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(ACCEPTED[name])
    ran = cli("check", path, "--json")
    assert ran.exit_code == ExitCode.OK, (name, ran.stdout)  # the loader accepts it (and its derivatives check) ...
    data = parse_yaml(ACCEPTED[name], "spec.yaml")
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]
    assert not errors, errors  # ... and so does the schema


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("{re: [1, 2], im: [0.5, -1], dtype: float32}", "{re, im} makes a complex value, not float32"),
        ("{re: [1, 2], zeros: 2}", "a value can have one constructor"),
        ("{re: {a: 1.0}}", "a real number or a nested list of real numbers"),
    ],
)
def test_complex_parts_the_loader_refuses_are_invalid(cli: Cli, tmp_path: Any, text: str, refused: str) -> None:
    spec = f"function: 'lambda z: jnp.sum(jnp.abs(z)**2)'\nprimals:\n  z: {text}\ndtype: complex64\n"
    (tmp_path / "spec.yaml").write_text(spec)
    ran = cli("check", tmp_path / "spec.yaml", "--json")
    assert ran.exit_code == ExitCode.BAD_INPUT and refused in ran.json()["specs"][0]["error"]["message"], ran.stdout
    assert not valid(spec)


# ----------------------------------------------------------------------------- the real validators (issue 22.7)


def _spec_files(folder: Path, specs: dict[str, str]) -> list[Path]:
    paths = []
    for i, text in enumerate(specs.values()):
        path = folder / f"spec{i}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


def test_check_jsonschema_accepts_every_config_and_refuses_what_the_loader_refuses(tmp_path: Path) -> None:
    """check-jsonschema (the pre-commit hook SchemaStore users run), reading the YAML itself."""
    tool = Path(sys.executable).parent / "check-jsonschema"
    configs = sorted(str(p) for p in CONFIGS.glob("*.yaml"))
    ran = subprocess.run([tool, "--schemafile", schema.SHIPPED, *configs], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for path in _spec_files(tmp_path, MORE_REFUSED):
        ran = subprocess.run([tool, "--schemafile", schema.SHIPPED, path], capture_output=True, text=True, timeout=300)
        assert ran.returncode == 1 and "Schema validation errors" in ran.stdout, (path.read_text(), ran.stdout, ran.stderr)


@pytest.mark.slow
def test_ajv_strict_mode_compiles_the_schema_accepts_every_config_and_refuses_the_rest(tmp_path: Path) -> None:
    """ajv 8 in strict mode, as SchemaStore runs it: installed from npm once into the user's cache."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are not installed")
    folder = Path.home() / ".cache" / "jaxdiff-tests" / "ajv8"
    if not (folder / "node_modules" / "ajv").is_dir():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([npm, "install", "--prefix", folder, "--no-audit", "--no-fund", "ajv@8"], check=True, timeout=300)

    def as_json(paths: list[Path]) -> list[Path]:
        out = []
        for path in paths:
            target = tmp_path / f"{path.stem}.json"
            try:
                target.write_text(json.dumps(parse_yaml(path.read_text(), str(path)), allow_nan=False))
            except ValueError:  # .inf or .nan, which JSON cannot hold (check-jsonschema above reads them)
                continue
            out.append(target)
        return out

    configs = as_json(sorted(CONFIGS.glob("*.yaml")))
    refused = as_json(_spec_files(tmp_path, MORE_REFUSED))
    assert len(configs) >= len(list(CONFIGS.glob("*.yaml"))) - 2 and len(refused) == len(MORE_REFUSED) - 1  # rtol .inf
    script = ROOT / "tests" / "assets" / "ajv_strict.js"
    ran = subprocess.run([node, script, folder, schema.SHIPPED, *configs, *refused], capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr  # strict mode compiled it
    verdicts = {line.split(" ")[1]: line.split(" ")[0] for line in ran.stdout.splitlines()}
    assert all(verdicts[str(p)] == "valid" for p in configs), ran.stdout
    assert all(verdicts[str(p)] == "invalid" for p in refused), ran.stdout


def test_the_readme_maps_the_file_pattern_to_the_schema() -> None:
    """Editors pick the schema up by file name (no comment line): the README's setting names the patterns."""
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```json\n(.*?)```", readme, re.S) if "yaml.schemas" in b]
    mapping = json.loads(block)["yaml.schemas"]
    assert list(mapping.values()) == [list(schema.FILE_PATTERNS)]
    assert schema.SCHEMA_ID in readme
