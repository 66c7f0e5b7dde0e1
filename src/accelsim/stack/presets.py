"""Stack presets: YAML files in ``stacks/`` (shipped as package data), loaded and validated."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..configio import (RECHECK_S, apply_overrides, content_stamp, data_dir, find_preset, load_yaml, mtime_ns, validate,
                        yaml_names)
from ..errors import ConfigError
from .spec import KernelLibrary, Stack


def stack_dir() -> Path:
    """Folder holding the shipped stacks."""
    return data_dir("stacks")


def list_stacks() -> list[str]:
    """Names of the shipped stacks, sorted."""
    return yaml_names(stack_dir())


def stack_path(name_or_path: str | Path) -> Path:
    """Resolve a stack name or a YAML path; an unknown name suggests close matches."""
    return find_preset(name_or_path, stack_dir(), "stack", f"Known stacks: {', '.join(list_stacks())}")


def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_raw(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> dict:
    """The stack file as a mapping, with ``base: NAME`` (a stack it extends) merged in: the
    file's own keys win, mappings merge key by key."""
    return _load_chain(name_or_path, _seen)[0]


def own_runtime(name_or_path: str | Path) -> dict:
    """The ``runtime`` block of the stack file itself, without its base's (what the file sets)."""
    return load_yaml(stack_path(name_or_path)).get("runtime") or {}


def _load_chain(name_or_path: str | Path, _seen: tuple[str, ...] = ()) -> tuple[dict, tuple[Path, ...]]:
    """(merged mapping, the files it was read from: the stack first, then its bases)."""
    path = stack_path(name_or_path)
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    base = data.pop("base", None)
    if base is None:
        return data, (path,)
    if not isinstance(base, str) or base in _seen or base == path.stem:
        raise ConfigError(f"{path}: base: must name another stack (no cycles), got {base!r}")
    parent, files = _load_chain(base, _seen + (path.stem,))
    parent.pop("name", None)
    parent["description"] = ""
    return _merge(parent, data), (path,) + files


def resolve(stack=None, default: str = "", mode: str = "realistic") -> Stack | None:
    """The stack a prediction runs under: None in ``ideal`` mode (peak rates, no software costs);
    otherwise ``stack`` (a name, a YAML file or a Stack), else the system's ``default`` stack
    name, else None (a system that names no stack)."""
    if mode not in ("realistic", "ideal"):
        raise ConfigError(f"mode must be 'realistic' or 'ideal', got {mode!r}")
    if mode == "ideal":
        if stack not in (None, ""):
            name = stack.name if isinstance(stack, Stack) else stack
            raise ConfigError(f"stack {name!r} given in ideal mode, which has no software stack (peak rates, no "
                              f"software costs): pass mode='realistic' to run under it, or no stack")
        return None
    chosen = stack if stack not in (None, "") else default
    if not chosen:
        return None
    if not isinstance(chosen, str):
        return _resolve(chosen, default)[0]
    key = (os.getcwd(), chosen, default)
    hit = _RESOLVED.get(key)
    if hit is not None:
        now = time.monotonic()
        if now - hit[2][0] < RECHECK_S:  # its shipped files' times are looked up at most once a second
            return hit[0]
        if _fresh(hit[1]):
            hit[2][0] = now
            return hit[0]
    st, name = _resolve(chosen, default)
    if len(_RESOLVED) > 64:
        _RESOLVED.clear()
    files = _load_chain(name)[1] + (_load_chain(default)[1] if default and name != default else ())
    if all(p.parent in _shipped_dirs() for p in files):
        folder = stack_dir()  # its listing: a stack added there may become the name's match
        _RESOLVED[key] = (st, _stamps(files) + ((folder, True, mtime_ns(folder)),), [time.monotonic()])
    return st


_RESOLVED: dict[tuple, tuple[Stack, tuple, list[float]]] = {}
"""``resolve``'s answer per (working folder, stack name, system default) when every file it read
is a shipped one, with the times of those files and of the stacks' folder (``_stamps``: checked
at most once a second, as ``load_stack`` checks them) and when they were last checked, so a
notebook's loop of evaluations does not list the stacks and load the same name again on every
call; an edit is seen as soon as before. A user's stack file is checked on every call, as
``load_stack`` does."""


def _resolve(chosen, default: str) -> tuple[Stack, str | Stack]:
    """The stack ``chosen`` names on a system whose default is ``default``, and the name it
    resolved to (``for_platform``)."""
    name = for_platform(chosen, default)
    st = load_stack(name)
    if default and not isinstance(name, Stack) and name != default:
        runs, needs = platform_of(name), platform_of(default)
        if runs != needs:  # a CUDA stack on a Trainium chip priced nothing it would run
            raise ConfigError(f"stack {st.name!r} runs on {runs}, but this system's chip runs {needs} stacks (its "
                              f"default: {default}); pick one of: "
                              f"{', '.join(x for x in list_stacks() if platform_of(x) == needs)}")
    return st, name


_SHIPPED: dict[Path, frozenset[Path]] = {}


def _shipped_dirs() -> frozenset[Path]:
    """The folders of the shipped stacks and kernel libraries, as given and resolved (the package's
    data folder may be a link to the repository's ``stacks/``)."""
    root = stack_dir()
    hit = _SHIPPED.get(root)
    if hit is None:
        hit = _SHIPPED[root] = frozenset({root, root.resolve(), kernels_dir(), kernels_dir().resolve()})
    return hit


def _stamps(files) -> tuple:
    """What a cache entry read from ``files`` is checked against (``_fresh``): a shipped file's
    modification time (looked up at most once a second, ``configio.RECHECK_S``); a user's file's
    time, size and content digest, read now (a program may rewrite it within one tick of the file
    system's clock)."""
    dirs = _shipped_dirs()
    flags = [(p, p.parent in dirs) for p in files]
    return tuple((p, shipped, mtime_ns(p) if shipped else content_stamp(p)) for p, shipped in flags)


def _fresh(stamps: tuple) -> bool:
    """Whether every file of a cache entry (``_stamps``) is unchanged."""
    return all((mtime_ns(p) if shipped else content_stamp(p)) == t for p, shipped, t in stamps)


_PLATFORMS: dict[tuple, tuple[str, tuple]] = {}


def platform_of(stack: str) -> str:
    """The platform a stack runs on: the first word of its root stack's name (cuda-native ->
    cuda, rocm-native -> rocm, neuron -> neuron), the second for XLA (xla-tpu -> tpu). Kept per
    stack until one of its files changes (``resolve`` asks on every evaluation that names a stack)."""
    key = (os.getcwd(), str(stack))
    hit = _PLATFORMS.get(key)
    if hit is not None and _fresh(hit[1]):
        return hit[0]
    files = _load_chain(stack)[1]
    root = files[-1].stem.split("-")
    out = root[1] if root[0] == "xla" and len(root) > 1 else root[0]
    if len(_PLATFORMS) > 64:
        _PLATFORMS.clear()
    _PLATFORMS[key] = (out, _stamps(files))
    return out


def for_platform(name, default: str = ""):
    """The stack a framework or engine name means on a system whose default stack is
    ``default``: ``name`` itself when it is a stack file, else ``NAME-PLATFORM`` (``vllm`` on a
    ROCm system is ``vllm-rocm``, on an NVIDIA one ``vllm-cuda``). Anything else is returned
    unchanged (load_stack then names the close matches)."""
    if not isinstance(name, str) or not default or name in list_stacks() or Path(name).suffix in (".yaml", ".yml"):
        return name
    cand = f"{name}-{platform_of(default)}"
    return cand if cand in list_stacks() else name


def base_of(name: str) -> str:
    """The stack that owns ``name``'s collective library: the first along its ``base:`` chain
    whose own file sets a ``collectives`` block (the chain's root when none does)."""
    files = _load_chain(name)[1]
    return next((f.stem for f in files if "collectives" in load_yaml(f)), files[-1].stem)


def load_stack(name_or_path: str | Path | Stack, overrides=()) -> Stack:
    """A validated Stack from a preset name, a YAML file or a Stack; ``overrides`` are
    ``path=value`` strings (as ``--set``). Errors name the file and the field."""
    if isinstance(name_or_path, Stack):
        return name_or_path
    key = (os.getcwd(), str(name_or_path), tuple(overrides))  # a relative path means the same file only here
    hit = _CACHE.get(key)
    if hit is not None and _fresh(hit[1]):
        return hit[0]
    path = stack_path(name_or_path)
    data, files = _load_chain(path)
    if overrides:
        data = apply_overrides(data, overrides, str(path))
    stack = validate(Stack, data, str(path))
    if stack.kernels is not None:
        try:
            load_kernels(stack.kernels)
        except ConfigError as e:
            raise ConfigError(f"{path}: kernels: {e}") from None
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = (stack, _stamps(files))
    return stack


def kernels_dir() -> Path:
    """Folder holding the kernel libraries (``stacks/kernels/``)."""
    return stack_dir() / "kernels"


def list_kernels() -> list[str]:
    """Names of the shipped kernel libraries, sorted."""
    return yaml_names(kernels_dir())


def load_kernels(name_or_path: str | Path) -> KernelLibrary:
    """A validated kernel library by name (``stacks/kernels/NAME.yaml``) or from a YAML file; an
    unknown name names the known ones, a bad file its field."""
    if Path(name_or_path).suffix in (".yaml", ".yml"):
        path = Path(name_or_path)
    elif name_or_path in list_kernels():
        path = kernels_dir() / f"{name_or_path}.yaml"
    else:
        raise ConfigError(f"unknown kernel library {name_or_path!r}; known: {', '.join(list_kernels())}")
    hit = _KERNELS.get(path)
    if hit is not None and _fresh(hit[1]):
        return hit[0]
    data = load_yaml(path)
    data.setdefault("name", path.stem)
    lib = validate(KernelLibrary, data, str(path))
    _KERNELS[path] = (lib, _stamps((path,)))
    return lib


def rewrite_kernels(name: str, update) -> Path:
    """``rewrite_stack`` for a kernel library file."""
    return _rewrite(kernels_dir() / f"{name}.yaml", update)


def rewrite_stack(name: str, update) -> Path:
    """Apply ``update(data)`` to a stack file's mapping in place and write it back, keeping the
    file's comment lines (generated values: ``accelsim priors --write``)."""
    return _rewrite(stack_path(name), update)


def _rewrite(path: Path, update) -> Path:
    import yaml

    from ..configio import parse_yaml, read_text

    text = read_text(path)
    data = parse_yaml(text, str(path))
    update(data)
    head = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    path.write_text(head + yaml.safe_dump(data, sort_keys=False, width=110))
    return path


_KERNELS: dict[Path, tuple[KernelLibrary, tuple]] = {}
"""file -> (kernel library, its file's stamp, ``_stamps``)."""
_CACHE: dict[tuple, tuple[Stack, tuple]] = {}
"""(cwd, name or path, overrides) -> (stack, the stamps of every file it was read from, ``_stamps``): an
edited stack or base file reloads; an unchanged shipped one costs a stat per file, a user's one a read."""
