"""``accelsim codesign plan``: recipes that meet accuracy targets, ranked per chip."""

from __future__ import annotations

import click

from .util import friendly


@click.group("codesign")
def codesign_group():
    """Plan compression backward from accuracy targets, jointly with the chips."""


@codesign_group.command("plan")
@click.option("--model", required=True, help="Model preset (the evidence names models the same way).")
@click.option("--target", "targets", multiple=True, required=True, metavar="TASK=CHANGE",
              help="Allowed change in points against the same source's BF16 baseline, e.g. mmlu=-1.0.")
@click.option("--systems", required=True, help="Comma-separated systems, e.g. trn2,h100-sxm-80gb,mi300x.")
@click.option("--evidence", type=click.Path(exists=True, dir_okay=False), default=None,
              help="An accuracy table in the columns of workloads/accuracy/published.csv [the shipped one].")
@click.option("--allow-proxy", is_flag=True, help="Count recipes without evidence for a target (marked proxy).")
@click.option("--batch", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--context", "context_len", type=click.IntRange(min=1), default=2048, show_default=True)
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None, help="Also write the table here.")
@friendly
def plan_command(model, targets, systems, evidence, allow_proxy, batch, context_len, markdown_path):
    """For each chip: the recipes that meet every target on the evidence (published accuracy
    with each source's own baseline), ranked by predicted decode tokens/s, then the rest with
    why (misses a target, or no evidence)."""
    from ..codesign.plan import plan, plan_markdown
    from ..compress.evidence import published

    goal = _targets(targets)
    ev = published(evidence) if evidence else None
    df = plan(model, goal, [s.strip() for s in systems.split(",") if s.strip()], ev, allow_proxy, batch, context_len)
    text = plan_markdown(df, goal)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(text + "\n")
    click.echo(text)


@codesign_group.command("review")
@click.option("--model", required=True, help="Model preset.")
@click.option("--target", "targets", multiple=True, required=True, metavar="TASK=CHANGE",
              help="Allowed change in points against the same source's BF16 baseline, e.g. mmlu=-1.0.")
@click.option("--systems", required=True, help="Comma-separated systems, e.g. trn2,h100-sxm-80gb,mi300x.")
@click.option("--allow-proxy", is_flag=True, help="Count recipes without evidence for a target.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None, help="Also write the table here.")
@friendly
def review_command(model, targets, systems, allow_proxy, markdown_path):
    """Architecture review: for each chip feature toggled (int4 math, fused dequantization, 2:4
    sparsity, HBM bandwidth, core SRAM), the fastest recipe that meets the targets and the change
    in tokens/s and energy per token against the chip as it is."""
    from ..codesign.plan import architecture_review, review_markdown

    goal = _targets(targets)
    df = architecture_review(model, goal, [s.strip() for s in systems.split(",") if s.strip()], None, allow_proxy)
    text = review_markdown(df)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(text + "\n")
    click.echo(text)


def _targets(targets) -> dict[str, float]:
    goal = {}
    for t in targets:
        task, _, value = t.partition("=")
        try:
            goal[task.strip()] = float(value)
        except ValueError:
            raise click.BadParameter(f"{t!r}: expected TASK=CHANGE, e.g. mmlu=-1.0", param_hint="--target") from None
    return goal
