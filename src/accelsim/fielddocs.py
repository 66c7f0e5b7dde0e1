"""Field docstrings as the descriptions of the input models' fields, worked out when asked for.

Every input model documents a field with the string under it; those strings are the
descriptions of ``accelsim schema`` and of the reference pages built from it. Pydantic can read
them as it builds each class (``use_attribute_docstrings``), but that parses every class's
source at import, ~60 ms of each process's start for descriptions nothing but a schema reads.
``describe`` reads them the same way (a string right under an annotated field of the class's
own body; a field the class takes from a base keeps its base's) once, when a schema is asked for.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import typing

from pydantic import BaseModel

_DONE: set[type] = set()


def own_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the docstring under its annotation in ``cls``'s own body."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    stmt = ast.parse(source).body[0]
    out: dict[str, str] = {}
    body = stmt.body if isinstance(stmt, ast.ClassDef) else []
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            out[node.target.id] = inspect.cleandoc(after.value.value)
    return out


def describe(model: type[BaseModel]) -> None:
    """Give ``model`` and every model its fields hold the descriptions of their field docstrings
    (a description given in ``Field`` is kept) and rebuild them, the models inside first."""
    order: list[type[BaseModel]] = []
    seen: set[type] = set()

    def visit(cls: type[BaseModel]) -> None:
        if cls in seen or cls in _DONE:
            return
        seen.add(cls)
        for f in cls.model_fields.values():
            for sub in _models_in(f.annotation):
                visit(sub)
        order.append(cls)

    visit(model)
    for cls in order:
        bases = [b for b in cls.__mro__ if isinstance(b, type) and issubclass(b, BaseModel) and b is not BaseModel]
        own = {}
        for b in reversed(bases):  # a field documented again in a subclass takes the subclass's text
            for name, doc in own_docstrings(b).items():
                own[name] = doc
        for name, field in cls.model_fields.items():
            if field.description is None and name in own:
                field.description = own[name]
        cls.model_rebuild(force=True)
        _DONE.add(cls)


def _models_in(annotation) -> list[type[BaseModel]]:
    """The pydantic models an annotation names (inside unions, lists, dicts, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]
