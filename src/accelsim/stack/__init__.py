"""Software stacks (``stacks/*.yaml``): runtime and collective-library costs as data."""

from .presets import list_stacks, load_stack, resolve, stack_dir
from .spec import CollectiveLibrary, Protocol, Runtime, Stack

__all__ = ["CollectiveLibrary", "Protocol", "Runtime", "Stack", "list_stacks", "load_stack", "resolve", "stack_dir"]
