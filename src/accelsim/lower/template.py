"""Op templates: an op's lowered tasks as arrays, appended again (renumbered) for an identical
op later in the graph, so a run of identical layers is lowered once."""

from __future__ import annotations

import numpy as np

from .schedule import ScheduleBuilder, Shift


class Template:
    """One op's tasks as arrays, to be appended again for an identical op: task ids inside the
    op are shifted, its two outside anchors (its start task and the previous op's start, which
    a weight prefetch waits on) are replaced, and its SRAM pools are created anew."""

    __slots__ = ("cols", "ptr", "idx", "inside", "t0", "start", "prev", "pools", "oid", "ends")

    @classmethod
    def record(cls, b: ScheduleBuilder, t0: int, p0: int, oid: int, start: int, prev: int,
               ends: list[int]) -> "Template | None":
        """The template of the tasks ``t0..`` just lowered for op ``oid``, or None when they
        depend on anything but themselves and the two anchors (then the op is lowered again)."""
        t1 = b.num_tasks
        cols, ptr, idx = b.segment(t0, t1)
        inside = (idx >= t0) & (idx < t1)
        outside = idx[~inside]
        e = np.asarray(ends, dtype=np.int64)
        pools = b.pools[p0:]
        acq, rel = cols["acquire"], cols["release"]
        if (not np.all((outside == start) | (outside == prev))
                or not np.all((cols["priority"] >= t0) & (cols["priority"] < t1))
                or not np.all((cols["op"] == oid))
                or not np.all((e == start) | ((e >= t0) & (e < t1)))
                or not all(((x < 0) | (x >= p0)).all() for x in (acq, rel))
                or not all(name.endswith(f".op{oid}") for name, _ in pools)):
            return None
        tpl = cls()
        tpl.cols, tpl.ptr, tpl.idx, tpl.inside = cols, ptr, idx, inside
        tpl.t0, tpl.start, tpl.prev, tpl.oid, tpl.ends = t0, start, prev, oid, e
        tpl.pools = [(name[: -len(f".op{oid}")], slots, p0) for name, slots in pools]
        b.compact(t0, cols, ptr, idx)  # the op's rows as the template's arrays from now on
        return tpl

    def replay(self, b: ScheduleBuilder, oid: int, start: int, prev: int) -> list[int]:
        shift = b.num_tasks - self.t0
        p_new = b.new_pools([(f"{name}.op{oid}", slots) for name, slots, _ in self.pools])
        p_shift = p_new - self.pools[0][2] if self.pools else 0
        b.append_shifted(self.cols, self.ptr, self.idx, Shift(shift, self.inside, self.start, start, prev, oid, p_shift))
        return np.where(self.ends == self.start, start, self.ends + shift).tolist()
