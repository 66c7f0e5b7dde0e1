"""Loading YAML configs with errors people can act on: the file, the field path, the problem."""

from __future__ import annotations

import copy
import difflib
import operator
import re
import os
import stat
import types
import typing
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo, field_validator

from .errors import AccelsimError, ConfigError, WorkloadError


MAX_CONFIG_BYTES = 16 * 2**20
"""Largest config file (YAML, JSON) read: configs are kilobytes; anything near this is a mistake."""
MAX_TABLE_BYTES = 512 * 2**20
"""Largest measurement table (CSV, parquet) read."""
MAX_YAML_NODES = 200_000
"""Most YAML nodes a document may expand to once its aliases are followed (an alias bomb
expands to billions from a few lines)."""
MAX_YAML_DEPTH = 64
"""Deepest nesting of mappings and lists in a YAML document."""


def _number_type(annotation) -> type | None:
    """int or float when a field's annotation is (an optional / annotated) int or float; bool
    when it is (an optional / annotated) bool."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _number_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if bool in args:
            return bool if args == [bool] else None
        kinds = {_number_type(a) for a in args} - {None}
        return float if float in kinds else (int if int in kinds else None)
    return annotation if annotation in (int, float, bool) else None


MAX_EXACT_INT = 2**53
"""Largest integer a spec field may hold: sizes and counts beyond it cannot be computed exactly
in the float arithmetic of the cost model (a vocabulary of 1e20 is a typo, not a model)."""


_KINDS: dict[tuple[type, str], type | None] = {}
"""(model, field) -> its number type, resolved once (validation runs per field of every spec:
sweeps validate thousands of systems a second)."""


def strict_number(model: type[BaseModel], name: str, value: Any) -> Any:
    """Refuse a boolean given for a number field (YAML ``true`` would otherwise read as 1), an
    integer beyond ``MAX_EXACT_INT``, and anything but a boolean for a boolean field (pydantic
    would read ``"yes"``, ``"off"`` or ``1`` as one)."""
    cls = value.__class__
    if cls is not bool and cls is not int and cls is not str and cls is not float:  # containers, None
        return value
    key = (model, name)
    if key not in _KINDS:
        field = model.model_fields.get(name)
        _KINDS[key] = _number_type(field.annotation) if field is not None else None
    kind = _KINDS[key]
    if kind is bool:
        if cls is not bool:
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if cls is str or cls is float:
        return value
    if cls is bool and kind is not None:
        raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
    if kind is int and isinstance(value, int) and abs(value) > MAX_EXACT_INT:
        raise ValueError(f"{value} is beyond the largest integer accelsim computes with exactly (2^53)")
    return value


class StrictModel(BaseModel):
    """Base of every input model (specs, stacks, models, plans, sweeps, measurement rows): no NaN
    or infinity, no boolean where a number is expected, no integer beyond ``MAX_EXACT_INT``."""

    model_config = ConfigDict(allow_inf_nan=False, defer_build=True)

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, v: Any, info: ValidationInfo) -> Any:
        return strict_number(cls, info.field_name, v)


def revalidate(instance: BaseModel, old: dict[str, Any], new: dict[str, Any]) -> BaseModel:
    """``type(instance).model_validate(new)`` for a ``new`` mapping that shares its unchanged
    sub-mappings (by identity) with ``old``, the mapping ``instance`` was validated from: the
    sub-model of an unchanged sub-mapping is passed as it is (pydantic does not re-validate a
    model instance), so only the mappings along a changed path are validated again, each
    level's own validators included. A sweep point that sets one field revalidates a few
    small models instead of the whole system."""
    if new is old:
        return instance
    cls = type(instance)
    fields = cls.model_fields
    data = {}
    children = {}  # sub-models validated again, by field
    own = new.keys() != old.keys()  # whether a field of this model itself changed
    for k, v in new.items():
        if k in fields and isinstance(v, dict) and isinstance(old.get(k), dict):
            sub = getattr(instance, k)
            if isinstance(sub, BaseModel):
                v = revalidate(sub, old[k], v)
                if v is not sub:
                    children[k] = v
                data[k] = v
                continue
        if v is not old.get(k):
            own = True
        data[k] = v
    if not own and _checks_fields_alone(cls):
        # only sub-models changed, and this model checks nothing across its fields: validating it
        # again would re-read its unchanged fields and take the new sub-models as they are
        return instance.model_copy(update=children)
    for k in fields.keys() - data.keys():  # a defaulted sub-model: as validated (not a deep copy of the default)
        v = getattr(instance, k)
        if isinstance(v, BaseModel):
            data[k] = v
    return cls.model_validate(data)


_FIELDS_ALONE: dict[type, bool] = {}


def _checks_fields_alone(cls: type[BaseModel]) -> bool:
    """Whether ``cls`` validates each field on its own: no model validator, no field validator
    but ``StrictModel``'s per-field number check, no post-init hook."""
    hit = _FIELDS_ALONE.get(cls)
    if hit is None:
        d = cls.__pydantic_decorators__
        hit = _FIELDS_ALONE[cls] = (not d.model_validators and not d.root_validators
                                    and all(v.info.fields == ("*",) and v.cls_var_name == "_strict_numbers"
                                            for v in d.field_validators.values())
                                    and cls.model_post_init is BaseModel.model_post_init)
    return hit


def spreadsheet_safe(df):
    """A copy of ``df`` whose text cells cannot run as spreadsheet formulas: a cell starting with
    ``=``, ``+``, ``-``, ``@``, tab or carriage return gets a leading apostrophe (OWASP CSV
    injection advice); numbers are untouched."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or str(out[c].dtype) in ("str", "string"):
            out[c] = out[c].map(lambda v: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r")
                                else v)
    return out


def check_regular_file(path: str | Path, error: type[AccelsimError] = ConfigError,
                       limit: int = MAX_CONFIG_BYTES) -> Path:
    """``path`` if it is a regular file of at most ``limit`` bytes; otherwise ``error`` naming
    it (a device such as /dev/zero, a pipe or a folder would be read forever or not at all)."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"{path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{path}: not a regular file (a device, pipe or socket cannot be read as a config)")
    if st.st_size > limit:
        raise error(f"{path}: {st.st_size / 2**20:.0f} MiB is more than the {limit / 2**20:.0f} MiB such a file "
                    f"may have")
    return p


def read_text(path: str | Path, error: type[AccelsimError] = ConfigError, limit: int = MAX_CONFIG_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes; errors name the file."""
    p = check_regular_file(path, error, limit)
    try:
        return p.read_bytes().decode("utf-8")
    except OSError as e:
        raise error(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte {e.start} is 0x{e.object[e.start]:02x})") from None


def _yaml_size(node, depth: int = 0, memo: dict | None = None) -> int:
    """Nodes of ``node`` with its aliases expanded (shared nodes counted once per use)."""
    memo = {} if memo is None else memo
    if depth > MAX_YAML_DEPTH:
        raise ValueError(f"nested more than {MAX_YAML_DEPTH} levels deep")
    got = memo.get(id(node))
    if got is not None:
        return got
    n = 1
    if isinstance(node, yaml.MappingNode):
        n += sum(_yaml_size(k, depth + 1, memo) + _yaml_size(v, depth + 1, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        n += sum(_yaml_size(v, depth + 1, memo) for v in node.value)
    if n > MAX_YAML_NODES:
        raise ValueError(f"expands to more than {MAX_YAML_NODES:,} nodes (an alias bomb?)")
    memo[id(node)] = n
    return n


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """SafeLoader without YAML 1.1's sexagesimal numbers: ``1:30`` is the string "1:30", not 90.
    libyaml's parser where PyYAML has it (a preset parses ~10x faster than in pure Python; the
    resolver and constructor, and with them every value, are PyYAML's own either way)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if not (tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
                                          and ":" in rx.pattern)]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _tag, _rx in (("tag:yaml.org,2002:int", r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
                  ("tag:yaml.org,2002:float", r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")):
    _Loader.add_implicit_resolver(_tag, re.compile(_rx), list("-+0123456789."))


def parse_yaml(text: str, origin: str, error: type[AccelsimError] = ConfigError) -> Any:
    """``yaml.safe_load`` with limits: the document may not expand (aliases followed) to more
    than ``MAX_YAML_NODES`` nodes or nest deeper than ``MAX_YAML_DEPTH``; a syntax error names
    the origin, line and column."""
    try:
        loader = _Loader(text)  # one scan: compose, check the node graph, construct from it
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _yaml_size(node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise error(f"{origin}{where}: malformed YAML: {problem}") from None
    except RecursionError:
        raise error(f"{origin}: refused: nested too deeply") from None
    except ValueError as e:
        raise error(f"{origin}: refused: {e}") from None


def load_yaml(path: Path, error: type[AccelsimError] = ConfigError) -> dict[str, Any]:
    """Read a YAML mapping from a regular file (see ``read_text`` and ``parse_yaml`` for the
    limits); a syntax error names the file, line and column. A text read before is not parsed
    again (PyYAML's pure-Python loader takes ~15 ms for a system preset, which every sweep reads):
    the caller gets a copy of the mapping it gave."""
    text = read_text(path, error)
    hit = _PARSED.get(text)
    if hit is None:
        hit = parse_yaml(text, str(path), error)
        if not isinstance(hit, dict):
            raise error(f"{path}: expected a mapping at the top level, got {type(hit).__name__}")
        if len(_PARSED) >= 64:
            _PARSED.clear()
        _PARSED[text] = hit
    return copy.deepcopy(hit)


_PARSED: dict[str, dict[str, Any]] = {}
"""Mappings ``load_yaml`` parsed, by the file's text."""


def validation_problems(err: ValidationError) -> list[str]:
    """One line per problem: ``dotted.path: message``."""
    lines = []
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown field (misspelt?)"
        elif e["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{path}: {msg}")
    return lines


def whole_number(name: str, value: Any, low: int = 1, error: type[AccelsimError] | None = None) -> int:
    """``value`` as an int of at least ``low``; anything else (a float, a string, a boolean) is
    ``error`` (default WorkloadError) naming ``name``."""
    error = error or WorkloadError
    if isinstance(value, bool):
        raise error(f"{name} must be an integer, got {value!r}")
    try:
        v = operator.index(value)
    except TypeError:
        raise error(f"{name} must be an integer, got {value!r}") from None
    if v < low:
        raise error(f"{name} must be {'positive' if low == 1 else f'>= {low}'}, got {v}")
    return v


def path_problem(model: type[BaseModel], path: str) -> str | None:
    """Why dotted ``path`` names no field of ``model`` (None when it does): an unknown key, with
    the close matches, or a key below a field that is not a mapping. A key below a mapping-typed
    field (``macs_per_cycle.bf16``) is a mapping key and passes; its value is validated later."""
    keys = path.split(".")
    node: Any = model
    for i, k in enumerate(keys):
        here = ".".join(keys[:i]) or "(top level)"
        if not (isinstance(node, type) and issubclass(node, BaseModel)):
            if typing.get_origin(node) in (dict, typing.Mapping) or node is dict:
                return None  # the rest is a key of a mapping field
            return f"{here} is not a mapping"
        field = node.model_fields.get(k)
        if field is None:
            return f"{'.'.join(keys[:i + 1])}: unknown field (misspelt?){suggest(k, node.model_fields)}"
        node = _unwrap(field.annotation)
    return None


def _unwrap(annotation: Any) -> Any:
    """The model or mapping type a field holds (``X | None``, ``Optional[X]``, ``Annotated[X,
    ...]`` unwrapped to ``X``); anything else as it is."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(args) != 1:
                return annotation
            annotation = args[0]
        else:
            return annotation


def validate(model: type[BaseModel], data: dict[str, Any], origin: str,
             error: type[AccelsimError] = ConfigError) -> Any:
    """Validate ``data`` as ``model``; every problem is reported with its path and ``origin``."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        problems = validation_problems(e)
        head = f"{origin}: {len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise error(head + "\n" + "\n".join(f"  {origin}: {p}" for p in problems)) from None


def apply_overrides(data: dict[str, Any], overrides: Iterable[str], origin: str = "--set") -> dict[str, Any]:
    """Apply ``path=value`` overrides (value parsed as YAML: numbers, strings, lists) to a copy.

    The path must name an existing mapping key chain except for the last key, which may be new
    (validation then rejects it if the schema does not know it). Only the mappings along each
    path are copied; the rest is shared with ``data`` (validation never mutates its input, and
    ``revalidate`` then validates only the changed mappings)."""
    out = dict(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{origin} {item!r}: expected path=value, e.g. chip.hbm.bandwidth_Bps='3 TB/s'")
        path, raw = item.split("=", 1)
        keys = path.strip().split(".")
        if not path.strip() or any(not k.strip() for k in keys):
            raise ConfigError(f"{origin} {item!r}: empty path segment (write e.g. chip.hbm.bandwidth_Bps=...)")
        keys = [k.strip() for k in keys]
        try:
            value = parse_yaml(raw, f"{origin} {path}")
        except ConfigError as e:
            if "refused" in str(e):
                raise
            value = raw
        node = out
        for i, k in enumerate(keys[:-1]):
            nxt = node.get(k) if isinstance(node, dict) else None
            if not isinstance(nxt, dict):
                if isinstance(node, dict) and nxt is None:
                    nxt = node[k] = {}
                else:
                    raise ConfigError(f"{origin} {path}: {'.'.join(keys[: i + 1])} is not a mapping")
            else:
                nxt = node[k] = dict(nxt)  # copied along the path (an earlier override may have copied it already)
            node = nxt
        node[keys[-1]] = value
    return out


def suggest(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' suffix for an unknown name, or an empty string."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(close)}?" if close else ""


_DATA_DIRS: dict[str, Path] = {}


def data_dir(folder: str) -> Path:
    """A folder of shipped preset data (``arch_configs``, ``workloads``, ``stacks``)."""
    hit = _DATA_DIRS.get(folder)
    if hit is None:
        from importlib import resources

        hit = _DATA_DIRS[folder] = Path(str(resources.files("accelsim") / "data" / folder))
    return hit


RECHECK_S = 1.0
"""A data file's modification time is looked up again at most this often (a preset or stack
edited while a notebook runs is seen within a second; a loop of evaluations does not stat the
same files thousands of times a second)."""
_STAMPS: dict[str, tuple[float, int]] = {}


def file_stamp(path: str | Path) -> tuple[int, int]:
    """(modification time in ns, size) of ``path``, looked up now; (-1, -1) when it does not exist.
    For caches that must see a file rewritten within ``RECHECK_S`` (a preset's validated object)."""
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_mtime_ns, st.st_size


def content_stamp(path: str | Path) -> tuple[int, int, str]:
    """(modification time in ns, size, sha1 of the bytes) of ``path``, read now; (-1, -1, "") when
    it cannot be read. For caches of a user's file, which a program may rewrite within one tick of
    the file system's clock (so that time and size alone may not change)."""
    import hashlib

    try:
        st = os.stat(path)
        with open(path, "rb") as fh:
            digest = hashlib.sha1(fh.read(MAX_CONFIG_BYTES + 1)).hexdigest()
    except OSError:
        return -1, -1, ""
    return st.st_mtime_ns, st.st_size, digest


def mtime_ns(path: str | Path) -> int:
    """``path``'s modification time (ns; -1 when it does not exist), looked up again only after
    ``RECHECK_S``."""
    import time

    key = str(path)
    now = time.monotonic()
    hit = _STAMPS.get(key)
    if hit is not None and now - hit[0] < RECHECK_S:
        return hit[1]
    try:
        stamp = os.stat(key).st_mtime_ns
    except OSError:
        stamp = -1
    if len(_STAMPS) > 4096:
        _STAMPS.clear()
    _STAMPS[key] = (now, stamp)
    return stamp


_LISTINGS: dict[Path, tuple[int, list[str]]] = {}


def yaml_names(folder: Path) -> list[str]:
    """Stems of the YAML files in ``folder``, sorted (listed again only when the folder
    changes)."""
    stamp = mtime_ns(folder)
    if stamp < 0:
        return []
    hit = _LISTINGS.get(folder)
    if hit is None or hit[0] != stamp:
        hit = _LISTINGS[folder] = (stamp, sorted(p.stem for p in folder.glob("*.yaml")))
    return list(hit[1])


def find_preset(name_or_path: str | Path, folder: Path, what: str, hint: str) -> Path:
    """A YAML path as given, or the preset ``name`` in ``folder``; an unknown name is a
    ConfigError suggesting close matches (``what``: "system preset", ...; ``hint``: where to
    find the list)."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise ConfigError(f"{p}: no such file")
        return p
    candidate = folder / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate.resolve()
    names = sorted(q.stem for q in folder.glob("*.yaml"))
    raise ConfigError(f"unknown {what} {str(name_or_path)!r}.{suggest(str(name_or_path), names)} {hint}")
