"""`check` refuses what the operations refuse, and --json is one document, always (issue 19.9)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SPEC = "function: jnp.sin(x) * y\nprimals: {x: [1.0, 2.0], y: 3.0}\n"


@pytest.mark.parametrize(
    ("extra", "op", "key"),
    [
        ("tangents: garbage\n", "jvp", "tangents"),
        ("tangents: {x: [1.0, 2.0, 3.0]}\n", "jvp", "tangents.x"),
        ("tangents: {x: [1.0], z: 2.0}\n", "jvp", "tangents"),
        ("wrt: [x, y]\ntangents: {x: [1.0, 2.0], y: [1.0, 2.0]}\n", "jvp", "tangents.y"),
        ("tangents: {x: [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]}\nwrt: [x, y]\n", "jvp", "tangents"),  # y missing
        ("cotangents: [1.0, 2.0, 3.0]\n", "vjp", "cotangents"),
        ("cotangents: {ones: [3]}\n", "vjp", "cotangents"),
    ],
)
def test_check_refuses_the_directions_jvp_and_vjp_refuse(cli: Any, tmp_path: Path, extra: str, op: str, key: str) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC + extra)
    refused = cli(op, str(bad))
    assert refused.exit_code == 3 and f"bad.yaml: {key}" in refused.stderr, refused.stderr
    ran = cli("check", str(bad), "-q")
    assert ran.exit_code == 3 and ran.stderr == refused.stderr, ran.stdout + ran.stderr  # the very error jvp gives
    # several specs: the others are still checked, and --json names the key
    (tmp_path / "good.yaml").write_text(SPEC)
    ran = cli("check", str(bad), str(tmp_path / "good.yaml"), "--json")
    assert ran.exit_code == 3
    bad_doc, good_doc = ran.json()["specs"]
    assert bad_doc["error"]["key"] == key and good_doc["passed"] is True, ran.stdout


@pytest.mark.parametrize(
    "extra",
    [
        "tangents: {x: [0.5, -1.0]}\n",
        "tangents: {x: [[1.0, 0.0], [0.0, 1.0]]}\n",  # a batch of two directions
        "wrt: [x, y]\ntangents: {x: [1.0, 2.0], y: 1.0}\ncotangents: [1.0, -1.0]\n",
        "cotangents: {ones: [2]}\n",
    ],
)
def test_check_still_passes_good_directions(cli: Any, tmp_path: Path, extra: str) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(SPEC + extra)
    ran = cli("check", str(good))
    assert ran.exit_code == 0, ran.stdout + ran.stderr


NONFINITE = "function: jnp.sum(jnp.log(x))\nprimals: {x: [0.0, 1.0]}\nrun: [eval, grad]\n"


@pytest.mark.parametrize("command", ["eval", "grad", "jacobian", "run"])
def test_json_with_check_finite_is_one_document(cli: Any, tmp_path: Path, command: str) -> None:
    spec = tmp_path / "nonfinite.yaml"
    spec.write_text(NONFINITE)
    ran = cli(command, str(spec), "--json", "--check-finite")
    assert ran.exit_code == 5, ran.stderr
    assert ran.stdout.count("\n") == 1, ran.stdout  # one line: one document
    doc = json.loads(ran.stdout)  # and it parses as one
    assert doc["error"]["exit_code"] == 5 and doc["error"]["key"] == "--check-finite", doc
    assert "inf (the first non-finite entry)" in doc["error"]["message"] and doc["warnings"], doc
    assert ("cases" if command == "run" else "outputs") in doc  # the results are still there
    assert ran.stderr.count("error: --check-finite") == 1, ran.stderr
    ran = cli(command, str(spec), "--json")  # without it: the results, a warning, no error
    assert ran.exit_code == 0 and "error" not in ran.json(), ran.stdout


def test_sparsity_json_errors_are_json_too(cli: Any) -> None:
    ran = cli("sparsity", "-f", "x *", "-p", "x=[1.0, 2.0]", "--json")
    assert ran.exit_code == 4 and ran.json()["error"]["key"] == "function", ran.stdout
