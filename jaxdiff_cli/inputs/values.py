"""Spec values -> NumPy arrays (pytrees of them), checked before anything is traced.

A value is a number, a nested list (a rectangular array), a constructor mapping (one of
``random``, ``zeros``, ``ones``, ``eye``, ``linspace``, ``arange``, ``file``, ``re``/``im``), or a
pytree: a mapping that is not a constructor, or a list holding mappings. Numbers in lists are read
as the spec's dtype; ``nan``, ``inf`` and ``-inf`` (and YAML's ``.nan``, ``.inf``) are IEEE values.
A string such as ``1+2j`` (Python's form, which YAML leaves a string) is a complex number: a list
holding one is complex, with parts of the spec's float precision.

Tangents, cotangents and expected values are read *guided* by the structure they must match
(the primals, the function's output), so every mismatch is caught here with both shapes named.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from jaxdiff_cli.dtypes import complex_dtype, is_complex, needs_x64, real_dtype
from jaxdiff_cli.encoding import shape_text
from jaxdiff_cli.errors import SpecError, join, suggest, where
from jaxdiff_cli.inputs import datafiles, sparsefile
from jaxdiff_cli.inputs.files import CommandLinePath, spec_path
from jaxdiff_cli.inputs.sparsefile import SparseValue

# Constructor name -> the other keys it accepts.
CONSTRUCTORS: dict[str, frozenset[str]] = {
    "value": frozenset({"dtype"}),
    "random": frozenset({"shape", "seed", "split", "partitionable", "low", "high", "dtype"}),
    "zeros": frozenset({"dtype"}),
    "ones": frozenset({"dtype"}),
    "eye": frozenset({"dtype"}),
    "linspace": frozenset({"dtype"}),
    "arange": frozenset({"dtype"}),
    "file": frozenset({"key", "shape", "dtype"}),
    # {re: ..., im: ...}: a complex value from its parts (either may be left out: it is then 0).
    "re": frozenset({"im", "dtype"}),
    "im": frozenset({"re", "dtype"}),
}
VALUE_DTYPES = ("float32", "float64", "complex64", "complex128", "int32", "int64", "bool")
MAX_RANK = datafiles.MAX_RANK
_NONFINITE = {"nan": math.nan, "inf": math.inf, "+inf": math.inf, "-inf": -math.inf}


@dataclass(frozen=True)
class Context:
    """What reading a value needs: the float dtype, where relative files live, where we are."""

    dtype: str
    base_dir: Path
    source: str
    # What data files may still bring into memory: share one across a spec's values (see datafiles.Budget).
    budget: datafiles.Budget = field(default_factory=datafiles.Budget, compare=False, repr=False)

    def at(self, keypath: str) -> str:
        return where(self.source, keypath)

    def error(self, keypath: str, message: str, hint: str | None = None) -> SpecError:
        return SpecError(message, where=self.at(keypath), hint=hint)


# --------------------------------------------------------------------------- unguided values


def is_constructor(raw: Any) -> bool:
    return isinstance(raw, dict) and any(k in CONSTRUCTORS for k in raw)


def build_value(raw: Any, ctx: Context, keypath: str, *, integers: bool = False) -> Any:
    """A primal value: an array, or a pytree (dict / list) of arrays.

    ``integers``: whole-number literals keep an integer dtype (an argument that is not
    differentiated: an index, a count); otherwise numbers are read as the spec's float dtype.
    """
    if is_constructor(raw):
        return construct(raw, ctx, keypath)
    if isinstance(raw, dict):
        if not raw:
            raise ctx.error(keypath, "empty mapping: a pytree needs at least one leaf")
        return {str(k): build_value(v, ctx, join(keypath, k), integers=integers) for k, v in raw.items()}
    if isinstance(raw, list) and any(isinstance(v, dict) for v in raw):
        return [build_value(v, ctx, join(keypath, i), integers=integers) for i, v in enumerate(raw)]
    return to_array(raw, ctx, keypath, integers=integers)


def default_int(ctx: Context) -> str:
    """JAX's integer dtype for the run: int64 only with x64 (float64 and complex128 specs)."""
    return "int64" if needs_x64(ctx.dtype) else "int32"


def to_array(raw: Any, ctx: Context, keypath: str, *, integers: bool = False) -> np.ndarray:
    """A number or a rectangular nested list -> an array of the spec dtype (or bool, or whole numbers
    as the run's integer dtype when ``integers``)."""
    flat: list[Any] = []
    shape = _walk(raw, ctx, keypath, flat)
    if len(shape) > MAX_RANK:
        raise ctx.error(keypath, f"lists nested {len(shape)} deep: arrays have at most {MAX_RANK} dimensions")
    if flat and all(isinstance(v, bool) for v in flat):
        return np.array(flat, dtype=bool).reshape(shape)
    if any(isinstance(v, bool) for v in flat):
        raise ctx.error(keypath, "mixes true/false with numbers")
    if integers and flat and all(type(v) is int for v in flat):
        return cast_int(np.array(flat, dtype=object).reshape(shape), default_int(ctx), ctx, keypath)
    if any(isinstance(v, complex) for v in flat):
        # A complex number anywhere makes the array complex, in the run's precision; binding then
        # refuses it for a differentiated argument of a real run (the hint names the complex dtype).
        numbers = np.array([complex(v) for v in flat], dtype=np.complex128).reshape(shape)
        return cast_float(numbers, replace(ctx, dtype=complex_dtype(ctx.dtype)), keypath)
    values = np.array([float(v) for v in flat], dtype=np.float64).reshape(shape)
    return cast_float(values, ctx, keypath)


def cast_int(values: np.ndarray, dtype: str, ctx: Context, keypath: str) -> np.ndarray:
    """Whole numbers as ``dtype``, refusing any that it cannot hold."""
    info = np.iinfo(dtype)
    flat = values.ravel()
    for i, v in enumerate(flat):
        if not info.min <= int(v) <= info.max:
            idx = np.unravel_index(i, values.shape) if values.ndim else ()
            raise ctx.error(
                keypath + "".join(f"[{int(k)}]" for k in idx),
                f"{int(v)} does not fit {dtype}",
                hint="set dtype: float64 for 64-bit integers" if dtype == "int32" else None,
            )
    return values.astype(dtype)


def cast_float(values: np.ndarray, ctx: Context, keypath: str) -> np.ndarray:
    """Cast to the spec float (or complex) dtype, refusing finite values that overflow it."""
    if np.iscomplexobj(values) and not is_complex(ctx.dtype):
        raise ctx.error(keypath, f"complex values where {ctx.dtype} numbers are expected", hint=f"use {complex_dtype(ctx.dtype)}")
    with np.errstate(over="ignore"):  # overflow is detected and reported just below
        out = values.astype(ctx.dtype)
    with np.errstate(invalid="ignore"):
        overflow = np.isfinite(values) & ~np.isfinite(out)
    if overflow.any():
        idx = tuple(int(i) for i in np.argwhere(overflow)[0])
        raise ctx.error(
            keypath + "".join(f"[{i}]" for i in idx),
            f"{values[idx]:g} overflows {ctx.dtype}",
            hint=None if needs_x64(ctx.dtype) else f"set dtype: {'complex128' if is_complex(ctx.dtype) else 'float64'}",
        )
    return out


def _walk(raw: Any, ctx: Context, keypath: str, flat: list[Any]) -> tuple[int, ...]:
    if isinstance(raw, list):
        if not raw:
            return (0,)
        shapes = [_walk(v, ctx, join(keypath, i), flat) for i, v in enumerate(raw)]
        for i, s in enumerate(shapes):
            if s != shapes[0]:
                raise ctx.error(
                    join(keypath, i),
                    f"ragged nested list: item has shape {shape_text(s)} but item 0 has {shape_text(shapes[0])}",
                    hint="arrays must be rectangular; a list of arrays is written [{value: [...]}, {value: [...]}]",
                )
        return (len(raw), *shapes[0])
    flat.append(_scalar(raw, ctx, keypath))
    return ()


def _scalar(raw: Any, ctx: Context, keypath: str) -> float | int | bool | complex:
    """A number as written: bool, int (a whole-number literal), float, or complex (a string such as 1+2j)."""
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int):
        try:
            float(raw)
        except OverflowError:  # a Python int beyond float64
            raise ctx.error(keypath, "integer overflows float64") from None
        return raw
    if isinstance(raw, float):
        return raw
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in _NONFINITE:
            return _NONFINITE[text]
        try:
            value = float(text)
        except ValueError:
            return _complex(raw, ctx, keypath)
        if math.isinf(value):
            raise ctx.error(keypath, f"{raw} overflows float64", hint="write inf if you mean infinity")
        return value
    if isinstance(raw, complex):
        return raw
    if isinstance(raw, dict):
        raise ctx.error(keypath, "a mapping inside a numeric list", hint="a pytree list must hold only mappings or arrays")
    if raw is None:
        raise ctx.error(keypath, "missing value (null)")
    raise ctx.error(keypath, f"a {type(raw).__name__} is not a number")


def _complex(raw: str, ctx: Context, keypath: str) -> complex:
    """A complex number written as Python writes one (``1+2j``, ``-0.5j``, ``(1-2j)``); spaces allowed."""
    text = raw.strip().replace(" ", "")
    # complex() also takes "j" alone and "infj"; a number needs a digit, or the name of a special value.
    hint = "numbers, nan, inf or -inf, or complex numbers such as 1+2j"
    special = any(word in text.lower() for word in ("inf", "nan"))
    if "j" not in text.lower() or not (special or any(ch.isdigit() for ch in text)):
        raise ctx.error(keypath, f"{raw!r} is not a number", hint=hint)
    try:
        value = complex(text)
    except ValueError:
        raise ctx.error(keypath, f"{raw!r} is not a number", hint=hint) from None
    if (math.isinf(value.real) or math.isinf(value.imag)) and "inf" not in text.lower():
        raise ctx.error(keypath, f"{raw} overflows complex128", hint="write inf if you mean infinity")
    return value


# --------------------------------------------------------------------------- constructors


def construct(raw: dict[str, Any], ctx: Context, keypath: str) -> Any:
    names = [k for k in raw if k in CONSTRUCTORS]
    if sorted(names) == ["im", "re"]:
        names = ["re"]  # one constructor, of two parts
    if len(names) > 1:
        raise ctx.error(keypath, f"a value can have one constructor, not {' and '.join(names)}")
    name = names[0]
    path = join(keypath, name)
    extra = set(raw) - {name} - CONSTRUCTORS[name]
    if extra:
        bad = sorted(map(str, extra))[0]
        allowed = sorted(CONSTRUCTORS[name])
        raise ctx.error(
            join(keypath, bad),
            f"unknown option {bad!r} for the {name!r} constructor",
            hint=suggest(bad, allowed) or f"options: {', '.join(allowed) or 'none'}",
        )
    dtype = raw.get("dtype", ctx.dtype)
    if dtype not in VALUE_DTYPES:
        raise ctx.error(join(keypath, "dtype"), f"unknown dtype {dtype!r}", hint=", ".join(VALUE_DTYPES))
    builders: dict[str, Callable[[dict[str, Any], Context, str, str], Any]] = {
        "value": _value,
        "random": _random,
        "zeros": _filled,
        "ones": _filled,
        "eye": _eye,
        "linspace": _linspace,
        "arange": _arange,
        "file": _file,
        "re": _parts,
        "im": _parts,
    }
    try:
        return builders[name](raw, ctx, keypath, dtype)
    except (ValueError, OverflowError, MemoryError) as exc:
        raise ctx.error(path, f"cannot build the value: {exc}") from None


MAX_ELEMENTS = datafiles.MAX_ELEMENTS  # 1 GiB of float32: larger values belong in a file


def _shape(raw: Any, ctx: Context, keypath: str) -> tuple[int, ...]:
    if isinstance(raw, int) and not isinstance(raw, bool):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in raw):
        raise ctx.error(keypath, f"a shape is a list of whole numbers >= 0, got {raw!r}")
    if len(raw) > MAX_RANK:
        raise ctx.error(keypath, f"a shape of {len(raw)} dimensions: arrays have at most {MAX_RANK}")
    if math.prod(raw) > MAX_ELEMENTS:
        raise ctx.error(keypath, f"shape {shape_text(raw)} has more than {MAX_ELEMENTS} elements")
    return tuple(raw)


def _number(raw: Any, ctx: Context, keypath: str) -> float:
    value = _scalar(raw, ctx, keypath)
    if isinstance(value, complex):
        raise ctx.error(keypath, f"expected a real number, got {raw!r}")
    if isinstance(value, bool) or not math.isfinite(value):
        raise ctx.error(keypath, f"expected a finite number, got {raw!r}")
    return float(value)


def _value(raw: dict[str, Any], ctx: Context, keypath: str, dtype: str) -> np.ndarray:
    """``{value: 1, dtype: int32}``: a literal with an explicit dtype."""
    path = join(keypath, "value")
    inner = raw["value"]
    if isinstance(inner, dict):
        raise ctx.error(path, "a number or a nested list of numbers")
    if np.dtype(dtype).kind == "b":
        arr = to_array(inner, ctx, path)
        if arr.dtype != bool:
            raise ctx.error(path, "dtype bool takes true/false values")
        return arr
    if np.dtype(dtype).kind in "iu":
        arr = to_array(inner, ctx, path, integers=True)
        if arr.dtype.kind not in "iu":
            raise ctx.error(path, f"dtype {dtype} takes whole numbers")
        return cast_int(arr.astype(object), dtype, ctx, path)
    arr = to_array(inner, replace(ctx, dtype="float64"), path)
    if arr.dtype == bool:
        raise ctx.error(path, f"dtype {dtype} takes numbers, not true/false")
    return cast_float(arr, replace(ctx, dtype=dtype), path)


def _parts(raw: dict[str, Any], ctx: Context, keypath: str, dtype: str) -> np.ndarray:
    """``{re: ..., im: ...}``: a complex value from its real and imaginary parts (a missing part is 0).

    Each part is a real value (a number, a nested list or a constructor); both have one shape. The
    dtype is the one given, else the run's complex dtype (complex64 in a float32 run).
    """
    if np.dtype(dtype).kind != "c":
        if "dtype" in raw:
            where = join(keypath, "dtype")
            raise ctx.error(where, f"{{re, im}} makes a complex value, not {dtype}", hint="complex64 or complex128")
        dtype = complex_dtype(dtype)
    real = replace(ctx, dtype=real_dtype(dtype))
    parts = {}
    for name in ("re", "im"):
        if name in raw:
            part = build_value(raw[name], real, join(keypath, name))
            if not isinstance(part, np.ndarray) or part.dtype.kind not in "iuf":
                raise ctx.error(join(keypath, name), "a real number or a nested list of real numbers")
            parts[name] = part
    re, im = parts.get("re"), parts.get("im")
    if re is not None and im is not None and re.shape != im.shape:
        raise ctx.error(keypath, f"re has shape {shape_text(re.shape)} but im has {shape_text(im.shape)}")
    first = re if re is not None else im
    assert first is not None  # one of the two named the constructor
    value = np.zeros(first.shape, np.complex128)
    value.real = re if re is not None else 0.0
    value.imag = im if im is not None else 0.0
    return cast_float(value, replace(ctx, dtype=dtype), keypath)


def _random(raw: dict[str, Any], ctx: Context, keypath: str, dtype: str) -> np.ndarray:
    import jax

    kind = raw["random"]
    if kind not in ("normal", "uniform"):
        raise ctx.error(join(keypath, "random"), f"unknown distribution {kind!r}", hint="normal or uniform")
    if "shape" not in raw:
        raise ctx.error(keypath, "the random constructor needs a shape", hint="e.g. {random: normal, shape: [3], seed: 0}")
    shape = _shape(raw["shape"], ctx, join(keypath, "shape"))
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ctx.error(join(keypath, "seed"), "a seed is a whole number from 0 to 2**32 - 1")
    if dtype not in ("float32", "float64", "complex64", "complex128"):
        raise ctx.error(join(keypath, "dtype"), "random values are floats (or complex, for normal)")
    if kind == "uniform" and is_complex(dtype):
        raise ctx.error(keypath, "uniform draws real numbers", hint="for complex values: {re: {random: uniform, ...}, im: {...}}")
    partitionable = raw.get("partitionable", True)
    if not isinstance(partitionable, bool):
        raise ctx.error(join(keypath, "partitionable"), "must be true or false")
    split = raw.get("split", [])
    steps = _split_steps(split, ctx, join(keypath, "split"))
    # JAX 0.5 changed the default threefry stream; partitionable: false reproduces older output.
    with jax.threefry_partitionable(partitionable):
        key = jax.random.PRNGKey(seed)
        for num, index in steps:
            key = jax.random.split(key, num)[index]
        if kind == "normal":
            if "low" in raw or "high" in raw:
                raise ctx.error(keypath, "low/high go with uniform, not normal")
            out = jax.random.normal(key, shape, dtype=dtype)
        else:
            low = _number(raw.get("low", 0.0), ctx, join(keypath, "low"))
            high = _number(raw.get("high", 1.0), ctx, join(keypath, "high"))
            if not low < high:
                raise ctx.error(keypath, f"low ({low:g}) must be below high ({high:g})")
            out = jax.random.uniform(key, shape, dtype=dtype, minval=low, maxval=high)
    return np.asarray(out)


MAX_SPLIT = 2**16  # num of a split: [num, index]


def _split_steps(split: Any, ctx: Context, keypath: str) -> list[tuple[int, int]]:
    if not isinstance(split, list):
        raise ctx.error(keypath, "a list of [num, index] pairs: key = split(key, num)[index], in order")
    steps = []
    for i, step in enumerate(split):
        ok = isinstance(step, list) and len(step) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in step)
        if not ok or not (1 <= step[0] <= MAX_SPLIT and 0 <= step[1] < step[0]):
            raise ctx.error(join(keypath, i), f"expected [num, index] with 0 <= index < num, got {step!r}")
        steps.append((step[0], step[1]))
    return steps


def _filled(raw: dict[str, Any], ctx: Context, keypath: str, dtype: str) -> np.ndarray:
    name = "zeros" if "zeros" in raw else "ones"
    shape = _shape(raw[name], ctx, join(keypath, name))
    return (np.zeros if name == "zeros" else np.ones)(shape, dtype=dtype)


def _eye(raw: dict[str, Any], ctx: Context, keypath: str, dtype: str) -> np.ndarray:
    shape = _shape(raw["eye"], ctx, join(keypath, "eye"))
    if len(shape) not in (1, 2):
        raise ctx.error(join(keypath, "eye"), "eye takes n or [n, m]")
    return np.eye(shape[0], shape[-1], dtype=dtype)


def _numbers(raw: Any, ctx: Context, keypath: str, sizes: tuple[int, ...], form: str) -> list[float]:
    if not isinstance(raw, list):
        raw = [raw]
    if len(raw) not in sizes:
        raise ctx.error(keypath, f"expected {form}, got {raw!r}")
    return [_number(v, ctx, join(keypath, i)) for i, v in enumerate(raw)]


def _linspace(raw: dict[str, Any], ctx: Context, keypath: str, dtype: str) -> np.ndarray:
    path = join(keypath, "linspace")
    start, stop, num = _numbers(raw["linspace"], ctx, path, (3,), "[start, stop, num]")
    if num != int(num) or not 0 <= num <= MAX_ELEMENTS:
        raise ctx.error(path, "num must be a whole number >= 0")
    return np.linspace(start, stop, int(num), dtype=dtype)


def _arange(raw: dict[str, Any], ctx: Context, keypath: str, dtype: str) -> np.ndarray:
    path = join(keypath, "arange")
    args = _numbers(raw["arange"], ctx, path, (1, 2, 3), "stop, [start, stop] or [start, stop, step]")
    if len(args) == 3 and args[2] == 0:
        raise ctx.error(path, "step must not be 0")
    start, stop, step = (0.0, args[0], 1.0) if len(args) == 1 else (args[0], args[1], args[2] if len(args) == 3 else 1.0)
    if (stop - start) / step > MAX_ELEMENTS:
        raise ctx.error(path, f"more than {MAX_ELEMENTS} elements")
    return np.arange(start, stop, step, dtype=dtype)


def _file_path(raw: dict[str, Any], ctx: Context, keypath: str) -> Path:
    """The file of a ``file:`` constructor, inside the spec's folder (unless typed on the command
    line); whether it is a regular file is checked on opening it."""
    path_text = raw["file"]
    fpath = join(keypath, "file")
    if not isinstance(path_text, str) or not path_text:
        raise ctx.error(fpath, "must be a file path")
    return spec_path(path_text, ctx.base_dir, ctx.at(fpath), trusted=isinstance(path_text, CommandLinePath))


def _read(path: Path, key: Any, ctx: Context, keypath: str) -> Any:
    """A data file's array (or an .npz's arrays by name): every refusal a spec error at its key."""
    fpath = join(keypath, "file")
    suffix = path.suffix.lower()
    budget = ctx.budget
    seen = (str(path), None if key is None else str(key))
    try:
        if seen in budget.loaded:  # the same file and key again (YAML aliases): read once, charged each time
            value = budget.loaded[seen]
            for arr in value.values() if isinstance(value, dict) else [value]:
                budget.charge(arr.size, arr.nbytes, path.name if key is None else f"{path.name}[{key}]")
            return value
        if suffix == ".npy":
            value = datafiles.read_npy(path, budget)
        elif suffix == ".npz":
            value = datafiles.read_npz(path, seen[1], budget)
        elif suffix == ".csv":
            value = datafiles.read_csv(path, budget)
        else:
            value = None
        if value is not None:
            budget.loaded[seen] = value
            return value
    except datafiles.Refused as exc:
        if exc.at_key:
            raise ctx.error(join(keypath, "key"), exc.message, hint=exc.hint) from None
        at = join(keypath, exc.member) if exc.member is not None and key is None else fpath
        raise ctx.error(at, exc.message, hint=exc.hint) from None
    except datafiles.READ_ERRORS as exc:
        # A corrupt, encrypted or oddly compressed archive, a bad CRC, a malformed header.
        raise ctx.error(fpath, f"cannot read {path.name}: {type(exc).__name__}: {exc}") from None
    hint = ".npy, .npz or .csv (a Matrix Market .mtx is written by -o, not read)" if suffix == ".mtx" else ".npy, .npz or .csv"
    raise ctx.error(fpath, f"unknown file type {suffix or '(none)'!r}", hint=hint)


def sparse_file(raw: Any, ctx: Context, keypath: str) -> SparseValue | None:
    """``{file: X.npz}`` holding a scipy sparse matrix (``-o J.npz`` of a sparse result, a sparse golden
    file), read as one; None for any other value, which ``construct`` reads as usual."""
    if not (isinstance(raw, dict) and set(raw) == {"file"} and str(raw["file"]).lower().endswith(".npz")):
        return None
    path = _file_path(raw, ctx, keypath)
    arrays = _read(path, None, ctx, keypath)
    return sparsefile.from_arrays(arrays, path.name, ctx.at(join(keypath, "file"))) if sparsefile.is_sparse(arrays) else None


def _file(raw: dict[str, Any], ctx: Context, keypath: str, dtype: str) -> Any:
    fpath = join(keypath, "file")
    path = _file_path(raw, ctx, keypath)
    key = raw.get("key")
    if key is not None and path.suffix.lower() != ".npz":
        raise ctx.error(join(keypath, "key"), "'key' goes with .npz files")
    value = _read(path, key, ctx, keypath)
    if isinstance(value, dict) and key is not None:
        value = value[str(key)]

    def finish(arr: np.ndarray, kp: str) -> np.ndarray:
        if arr.dtype.kind not in datafiles.NUMBER_KINDS:  # only scipy's format member gets here
            raise ctx.error(kp, f"{path.name} holds {arr.dtype} data, not numbers")
        if "shape" in raw:
            want = _shape(raw["shape"], ctx, join(keypath, "shape"))
            if arr.shape != want:
                raise ctx.error(
                    join(keypath, "shape"), f"{path.name} has shape {shape_text(arr.shape)}, expected {shape_text(want)}"
                )
        if arr.dtype.kind == "c" and np.dtype(dtype).kind != "c" and "dtype" in raw:
            raise ctx.error(join(keypath, "dtype"), f"{path.name} holds complex data: {dtype} would drop its imaginary part")
        if "dtype" in raw:
            return arr.astype(dtype)
        if arr.dtype.kind == "c":  # complex data in the run's precision, as real data takes the run's float dtype
            return cast_float(arr.astype(np.complex128), replace(ctx, dtype=complex_dtype(ctx.dtype)), kp)
        if arr.dtype.kind == "f":
            return cast_float(arr.astype(np.float64), ctx, kp)
        return arr  # integers and bools stay as they are (indices, labels)

    if isinstance(value, dict):
        if sparsefile.is_sparse(value):  # its members are no arrays by name: say what it is
            raise ctx.error(
                fpath,
                f"{path.name} holds a scipy sparse matrix (scipy.sparse.save_npz), not arrays by name",
                hint="an expect: value of a jacobian or hessian can be one ({file: X.npz}); a value here is dense:"
                " .npy, or an .npz of arrays",
            )
        if "shape" in raw:
            raise ctx.error(join(keypath, "shape"), "'shape' needs 'key' for an .npz file")
        return {k: finish(v, join(keypath, k)) for k, v in value.items()}
    return finish(value, fpath)


MAX_LEAVES = datafiles.MAX_ARRAYS  # arrays in all the primals of a spec: each is an argument of every program


# --------------------------------------------------------------------------- guided values


@dataclass(frozen=True)
class Guided:
    """A value read to match a structure; ``batch`` is the leading batch size, if any."""

    value: Any
    batch: int | None


def leaf_shape(leaf: Any) -> tuple[int, ...]:
    return tuple(leaf.shape)


def build_like(raw: Any, like: Any, ctx: Context, keypath: str, what: str) -> Guided:
    """Read ``raw`` with the pytree structure of ``like`` (arrays or ShapeDtypeStructs).

    Each leaf must have the shape of its ``like`` leaf, or that shape behind one leading batch
    axis of the same size for every leaf.
    """
    leaves: list[tuple[str, np.ndarray, Any]] = []
    value = _guided(raw, like, ctx, keypath, what, leaves)
    batch: int | None = None
    first: str | None = None
    for kp, arr, ref in leaves:
        want = leaf_shape(ref)
        if arr.shape == want:
            this = None
        elif arr.ndim == len(want) + 1 and arr.shape[1:] == want:
            this = arr.shape[0]
        else:
            raise ctx.error(kp, f"shape {shape_text(arr.shape)} does not match {what} {shape_text(want)}")
        if first is None:
            batch, first = this, kp
        elif this != batch:
            said = "unbatched" if batch is None else f"batch {batch}"
            now = "unbatched" if this is None else f"batch {this}"
            raise ctx.error(kp, f"{now} but {first} is {said}; every leaf needs the same leading batch axis")
    return Guided(value=value, batch=batch)


def _guided(raw: Any, like: Any, ctx: Context, keypath: str, what: str, leaves: list[tuple[str, np.ndarray, Any]]) -> Any:
    if is_constructor(raw) and isinstance(like, (Mapping, list, tuple)):
        raw = construct(raw, ctx, keypath)  # e.g. an .npz holding a whole parameter pytree
    if isinstance(like, Mapping):
        if not isinstance(raw, dict):
            raise ctx.error(keypath, f"expected a mapping with keys {', '.join(map(str, like))} like the {what}")
        missing = [k for k in like if k not in raw]
        extra = [k for k in raw if k not in like]
        if missing or extra:
            parts = ([f"missing {', '.join(map(str, missing))}"] if missing else []) + (
                [f"unexpected {', '.join(map(str, extra))}"] if extra else []
            )
            raise ctx.error(keypath, f"keys do not match the {what}: {'; '.join(parts)}")
        return {k: _guided(raw[k], like[k], ctx, join(keypath, k), what, leaves) for k in like}
    if isinstance(like, (list, tuple)):
        if not isinstance(raw, list) or len(raw) != len(like):
            raise ctx.error(keypath, f"expected a list of {len(like)} values like the {what}")
        out = [_guided(r, lk, ctx, join(keypath, i), what, leaves) for i, (r, lk) in enumerate(zip(raw, like))]
        return tuple(out) if isinstance(like, tuple) else out
    dtype = np.dtype(like.dtype)
    if isinstance(raw, np.ndarray):
        arr = raw
    else:
        # A leaf is read as real or complex as the leaf it stands for, at the run's precision: the
        # cotangent of a real output of complex inputs is real (1.0, {ones: ...}, {random: ...}),
        # where the run's complex dtype would have made it complex and then refused it.
        run_kind = "c" if is_complex(ctx.dtype) else "f"
        leaf_ctx = ctx
        if dtype.kind in "fc" and dtype.kind != run_kind:
            leaf_ctx = replace(ctx, dtype=real_dtype(ctx.dtype) if dtype.kind == "f" else complex_dtype(ctx.dtype))
        try:
            arr = construct(raw, leaf_ctx, keypath) if is_constructor(raw) else to_array(raw, leaf_ctx, keypath)
        except SpecError as exc:
            if dtype.kind == "f" and exc.message.startswith("complex values where"):
                raise ctx.error(keypath, f"complex values where the {what} holds {dtype} numbers") from None
            raise
    if isinstance(arr, dict):
        raise ctx.error(keypath, f"an .npz without 'key' gives a mapping, but the {what} here is one array")
    if dtype.kind in "fc" and np.asarray(arr).dtype == bool:
        raise ctx.error(keypath, f"true/false values where the {what} holds {dtype} numbers")
    if dtype.kind == "f" and np.iscomplexobj(arr):
        raise ctx.error(keypath, f"complex values where the {what} holds {dtype} numbers")
    if dtype.kind == "f":
        arr = cast_float(np.asarray(arr, dtype=np.float64), replace(ctx, dtype=str(dtype)), keypath)
    if dtype.kind == "c":
        arr = cast_float(np.asarray(arr, dtype=np.complex128), replace(ctx, dtype=str(dtype)), keypath)
    leaves.append((keypath, arr, like))
    return arr


def per_argument(raw: Any, names: Sequence[str], ctx: Context, keypath: str) -> list[tuple[str, Any, str]]:
    """Split a per-argument value (tangents, expected grads): keyed by argument, or bare for one.

    Returns (name, raw value, key path) per argument.
    """
    if isinstance(raw, dict) and not is_constructor(raw) and set(raw) == set(names):
        return [(n, raw[n], join(keypath, n)) for n in names]
    if len(names) == 1:
        return [(names[0], raw, keypath)]
    got = f"keys {', '.join(map(str, raw))}" if isinstance(raw, dict) else "one value"
    raise ctx.error(keypath, f"give one entry per differentiated argument ({', '.join(names)}); got {got}")
