"""The README's printed examples are re-run and compared with the text, so its numbers cannot go
stale. A checked block is a fenced block right after a line ``<!-- readme-check: COMMAND -->``
(or one whose first line is ``$ COMMAND``). Every line of the block (except ``...``) must match a
line of the command's output with the same words, and every number on it must agree within 3 %
(or 0.15 absolute, for small rounded figures such as "0.4%"). Lines of the output the block
leaves out are fine: the README abbreviates."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from accelsim.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
NUM = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?")
REL, ABS = 0.03, 0.15


def checked_blocks(text: str) -> list[tuple[str, list[str], int]]:
    """(command, expected lines, README line number) of every checked block."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        marker = re.match(r"<!-- readme-check: (.+?) -->", lines[i - 1].strip()) if i else None
        body_start = i + 1
        cmd = marker.group(1) if marker else None
        if cmd is None and body_start < len(lines) and lines[body_start].startswith("$ accelsim "):
            cmd = lines[body_start][2:]
            body_start += 1
        if cmd is None or line.strip() not in ("```", "```text"):
            continue
        end = next(j for j in range(body_start, len(lines)) if lines[j].startswith("```"))
        out.append((cmd, [ln for ln in lines[body_start:end] if ln.strip() and ln.strip() != "..."], i + 1))
    return out


def shape(line: str) -> str:
    return re.sub(r"\s+", " ", NUM.sub("#", line)).strip()


def numbers(line: str) -> list[float]:
    return [float(x.replace(",", "")) for x in NUM.findall(line)]


BLOCKS = checked_blocks(README.read_text(encoding="utf-8"))


def test_readme_has_checked_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("cmd, expected, where", BLOCKS, ids=[f"README:{b[2]}" for b in BLOCKS])
def test_readme_example_matches_what_the_command_prints(cmd, expected, where):
    args = shlex.split(cmd)
    assert args[0] == "accelsim", cmd
    r = CliRunner().invoke(main, args[1:])
    assert r.exit_code == 0, f"README line {where}: `{cmd}` failed:\n{r.output}"
    got = [ln for ln in r.output.splitlines() if ln.strip()]
    by_shape: dict[str, list[str]] = {}
    for ln in got:
        by_shape.setdefault(shape(ln), []).append(ln)
    problems = []
    for want in expected:
        cands = by_shape.get(shape(want))
        if not cands:
            problems.append(f"not printed any more: {want.strip()!r}")
            continue
        w = numbers(want)

        def close(line: str) -> bool:
            return all(abs(a - b) <= max(REL * abs(b), ABS) for a, b in zip(numbers(line), w))

        if not any(close(c) for c in cands):
            problems.append(f"README {want.strip()!r}\n    now    {cands[0].strip()!r}")
    assert not problems, f"README line {where} (`{cmd}`) is stale:\n  " + "\n  ".join(problems)
