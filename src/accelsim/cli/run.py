"""``accelsim run``: one prefill, decode or training step of a model on a system."""

from __future__ import annotations


import json

import click

from ..units import fmt
from .util import friendly, on_command_line, write_or_print_json


@click.command()
@click.argument("system")
@click.argument("model")
@click.option("--phase", type=click.Choice(["prefill", "decode", "train"]), default="decode", show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Sequences (or images) per step.")
@click.option("--seq", "seq_len", type=click.IntRange(min=1), default=None, help="Prompt length for prefill [2048].")
@click.option("--context", "context_len", type=click.IntRange(min=0), default=None, help="Cached tokens for decode [2048].")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tensor-parallel degree (chips; on AWS Neuron systems: NeuronCores).")
@click.option("--pp", type=click.IntRange(min=1), default=1, show_default=True, help="Pipeline stages (train).")
@click.option("--dp", type=click.IntRange(min=1), default=1, show_default=True, help="Data-parallel replicas (train).")
@click.option("--ep", type=click.IntRange(min=1), default=1, show_default=True, help="Expert-parallel degree (train, MoE).")
@click.option("--cp", type=click.IntRange(min=1), default=1, show_default=True, help="Context-parallel degree (train).")
@click.option("--sp/--no-sp", default=None,
              help="Megatron sequence parallelism (train) [the stack's training framework's default, else off].")
@click.option("--tp-overlap/--no-tp-overlap", "tp_comm_overlap", default=None,
              help="Overlap the sequence-parallel TP collectives with their GEMMs (train; Transformer Engine "
                   "userbuffers) [the stack's training framework's default, else off].")
@click.option("--microbatch", type=click.IntRange(min=1), default=1, show_default=True, help="Sequences per microbatch (train).")
@click.option("--chips", type=click.IntRange(min=1), default=None, help="Total chips (train); checked against tp x pp x dp x cp.")
@click.option("--zero", type=click.IntRange(0, 3), default=None,
              help="ZeRO stage (train; 3 = FSDP) [the stack's training framework's default, else 0].")
@click.option("--recompute", type=click.Choice(["none", "selective", "full"]), default=None,
              help="Activation recomputation (train) [the stack's training framework's default, else none].")
@click.option("--selective", type=click.Choice(["attention", "op", "qkv_proj", "context_offload"]), default=None,
              help="What --recompute selective keeps (train): attention (Megatron-LM: all but the attention core), "
                   "op (torchtitan), qkv_proj or context_offload (MaxText remat policies) [the stack's default].")
@click.option("--schedule", type=click.Choice(["1f1b", "gpipe"]), default="1f1b", show_default=True, help="Pipeline schedule (train).")
@click.option("--vpp", type=click.IntRange(min=1), default=1, show_default=True,
              help="Model chunks per pipeline stage: > 1 runs interleaved 1F1B (train).")
@click.option("--vocab-tiles", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tiles the loss runs over, none of their logits kept (MaxText num_vocab_tiling; train).")
@click.option("--dtype", type=click.Choice(["bf16", "fp16", "fp8", "fp32"]), default="bf16", show_default=True)
@click.option("--attention", type=click.Choice(["flash", "unfused", "unfused_grouped"]), default=None,
              help="Attention implementation: flash (fused), unfused (eager: K / V repeated to the query heads) or "
                   "unfused_grouped (scores in HBM, K / V read once per KV head) [the stack's: flash, or unfused_grouped "
                   "where its engine has no fused attention]")
@click.option("--weights", default=None, metavar="FORMAT", help="Weight format (accelsim formats), e.g. int4-g128, fp8, mxfp4.")
@click.option("--activations", default=None, metavar="FORMAT", help="Activation format of the weight GEMMs, e.g. fp8.")
@click.option("--kv", "kv_cache", default=None, metavar="FORMAT", help="KV-cache format, e.g. fp8.")
@click.option("--sparsity", default=None, metavar="N:M", help="N:M structured weight sparsity, e.g. 2:4.")
@click.option("--recipe", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Compression recipe YAML; --weights/--activations/--kv/--sparsity override its fields.")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="Override a system field, e.g. --set chip.hbm.bandwidth_Bps='4 TB/s' (repeatable).")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="Calibration YAML (from `accelsim calibrate`) applied to the chip before --set overrides.")
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True,
              help="analytical: closed form per op; event: tile tasks simulated on engines, DMA, SRAM and HBM "
                   "(train: every op of every microbatch, all parallel groups' traffic on the shared links).")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None,
              help="Write a Chrome trace (Perfetto JSON; .gz to compress) of the event-tier run.")
@click.option("--trace-window", "trace_window", default=None, metavar="START:END",
              help="Only trace what overlaps this span of the step, e.g. '6.5 s:6.8 s' or '0:2 ms' (default: all).")
@click.option("--trace-detail", "trace_detail", type=click.Choice(["compact", "full"]), default="compact",
              show_default=True,
              help="compact: one slice per op and engine class with dependency arrows (small); full: one per task.")
@click.option("--timeline", "timeline_path", type=click.Path(dir_okay=False), default=None,
              help="Write a timeline / utilization PNG of the event-tier run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write ops.csv, summary.json, summary.md, roofline.png here.")
@click.option("--top", type=click.IntRange(min=0), default=8, show_default=True, help="Op roles to list.")
@click.option("--stack", "stack_name", default=None,
              help="Software stack (accelsim presets lists them); default: the system's stack.")
@click.option("--ideal", is_flag=True, help="The ideal bound: peak rates, no software costs (the presets as written).")
@click.option("--force-calibration", is_flag=True, help="Apply --calibration even if it was fitted on another chip.")
@click.option("--load", type=click.Choice(["sustained", "burst"]), default="sustained", show_default=True,
              help="sustained: a production run's steady state (the chip's power-limited sustained clock); burst: a "
                   "short benchmark run (the clock the achievable priors were measured at).")
@click.option("--qat", default=None, metavar="RECIPE",
              help="Train: the cost of quantization-aware training into RECIPE (a tag such as w4a8) over --tokens.")
@click.option("--distill-from", "teacher", default=None, metavar="MODEL",
              help="Train: the cost of distilling MODEL (the teacher) into this one over --tokens.")
@click.option("--teacher-system", default=None, help="System the teacher runs on [the student's chips, between steps].")
@click.option("--distill-targets", type=click.Choice(["logits", "hidden"]), default="logits", show_default=True,
              help="What --distill-from matches: the teacher's logits, or its logits and every layer's hidden state.")
@click.option("--prune", "prune_recipe", default=None, metavar="RECIPE",
              help="Train: the cost of structured pruning by RECIPE (a YAML with a prune block) and a healing "
                   "fine-tune over --tokens (by distillation with --distill-from).")
@click.option("--tokens", type=click.FloatRange(min=1), default=10e9, show_default=True,
              help="Training tokens of --qat / --distill-from.")
@friendly
def run(system, model, phase, batch, seq_len, context_len, tp, pp, dp, ep, cp, sp, tp_comm_overlap, microbatch, chips,
        zero, recompute, selective, schedule, vpp, vocab_tiles, dtype, attention, weights, activations, kv_cache,
        sparsity, recipe, overrides, calibration, fidelity, trace_path, trace_window, trace_detail, timeline_path,
        as_json, out, top, stack_name, ideal, force_calibration, load, qat, teacher, teacher_system, distill_targets,
        prune_recipe, tokens):
    """Predict one prefill, decode or training step of MODEL on SYSTEM (preset names or YAML
    files). For --phase train, --batch is the global batch."""
    from ..api import evaluate
    from ..arch.presets import load_system
    from .compress import recipe_from_options

    compression = recipe_from_options(recipe, weights, activations, kv_cache, sparsity)

    if ideal and stack_name:
        raise click.UsageError("--ideal and --stack exclude each other (ideal mode has no software stack)")
    mode = "ideal" if ideal else "realistic"
    if (trace_path or timeline_path) and fidelity != "event":
        raise click.UsageError("--trace and --timeline need --fidelity event")
    if trace_window and not trace_path:
        raise click.UsageError("--trace-window needs --trace")
    window = _window(trace_window) if trace_window else None
    outputs = dict(fidelity=fidelity, trace_path=trace_path, window=window, timeline_path=timeline_path,
                   detail=trace_detail)
    if calibration is not None:
        system = load_system(system, overrides, calibration=calibration, force_calibration=force_calibration)
        overrides = ()
    if teacher_system and not teacher:
        raise click.UsageError("--teacher-system is where the --distill-from teacher runs: add --distill-from")
    if on_command_line("distill_targets") and not teacher:
        raise click.UsageError("--distill-targets says what --distill-from matches: add --distill-from")
    if on_command_line("tokens") and not (qat or teacher or prune_recipe):
        raise click.UsageError("--tokens is the length of a --qat, --distill-from or --prune run: add one")
    plan_fields = dict(tp=tp, pp=pp, dp=dp, ep=ep, cp=cp, sp=sp, tp_comm_overlap=tp_comm_overlap, microbatch=microbatch,
                       zero=zero, recompute=recompute, selective=selective, schedule=schedule, vpp=vpp,
                       vocab_tiles=vocab_tiles)
    if qat or teacher or prune_recipe:
        if phase != "train":
            raise click.UsageError("--qat, --distill-from and --prune price training runs: add --phase train")
        return _run_produce(system, model, batch, seq_len or 2048, plan_fields, qat, teacher, teacher_system, tokens,
                            stack_name, as_json, distill_targets, prune_recipe)
    if phase == "train" and context_len is not None:
        raise click.UsageError("--context is a decode step's cached tokens; a training step reads --seq")
    if phase == "train":
        return _run_train(system, model, batch, seq_len or 2048, plan_fields, chips, dtype, attention, overrides,
                          as_json, out, top, compression, mode, stack_name, outputs, load)
    if (any(v != 1 for v in (pp, dp, ep, cp, vpp, vocab_tiles)) or zero or chips or sp or recompute or selective
            or tp_comm_overlap is not None or on_command_line("microbatch", "schedule")):
        raise click.UsageError("--pp/--dp/--ep/--cp/--vpp/--vocab-tiles/--sp/--tp-overlap/--zero/--recompute/"
                               "--selective/--chips/--microbatch/--schedule apply to --phase train")
    if phase == "decode" and seq_len is not None:
        raise click.UsageError("--seq is a prefill's prompt length; a decode step reads --context (tokens already "
                               "cached)")
    res = evaluate(system, model, phase=phase, batch=batch, seq_len=seq_len, context_len=context_len,
                   tp=tp, dtype=dtype, attention=attention, overrides=overrides, fidelity=fidelity,
                   compression=compression, mode=mode, stack=stack_name, load=load)
    _write_outputs(res, outputs)
    if write_or_print_json(res, out, as_json):
        return
    s = res.summary
    shape = f"seq {s['seq_len']}" if phase == "prefill" else f"context {s['context_len']}"
    tp = f"tp={s['tp_ranks']} NeuronCores on {s['tp']} chips" if "tp_ranks" in s else f"tp={s['tp']}"
    click.echo(f"{s['model']} {phase} on {s['system']} ({s['chip']}, {tp}, {s['dtype']}, "
               f"batch {s['batch']}, {shape}, {s['attention']} attention)")
    _echo_mode(s)
    for w in res.warnings:  # before the figures they qualify
        click.echo(f"warning: {w}", err=True)
    if s.get("padding"):
        click.echo(f"  padding       {s['padding']}")
    if s.get("decode_bucket_tokens"):
        b = s["decode_bucket_tokens"]
        click.echo(f"  bucket        decode program of {b:,} positions (the engine's smallest bucket that holds "
                   f"{s['context_len'] + 1:,}): attention reads {b - 1:,} cached tokens")
    if s.get("kv_cache") == "concat" and phase == "decode":
        click.echo(f"  kv cache      grows by concatenation: each layer's append copies its {s['context_len']:,} cached "
                   f"tokens again")
    if compression is not None:
        click.echo(f"  compression   {compression.describe()}")
    band = s.get("expected_error")
    expect = f", expected +-{100 * band['relative']:.0f} % ({band['basis']})" if band else ""
    click.echo(f"  latency       {fmt(s['latency_s'], 's')} per step ({s['fidelity']}){expect}")
    if s["fidelity"] == "event":
        click.echo(f"  analytical    {fmt(s['analytical_latency_s'], 's')} per step; "
                   f"{s['num_tasks']:,} tasks simulated")
    click.echo(f"  tokens/s      {s['tokens_per_s']:,.1f}")
    click.echo(f"  MFU           {100 * s['mfu']:.1f}%")
    click.echo(f"  HBM BW used   {100 * s['hbm_bandwidth_utilization']:.1f}% "
               f"({fmt(s['hbm_bytes_per_chip'], 'B')} per chip)")
    click.echo(f"  memory/chip   {fmt(s['memory_bytes_per_chip'], 'B', binary=True)} of "
               f"{fmt(s['hbm_capacity_bytes'], 'B', binary=True)} HBM")
    if s["fidelity"] == "event":
        click.echo(f"critical path: {s['bottleneck']}")
        for c, t in sorted(s["critical_path_s"].items(), key=lambda kv: -kv[1]):
            if t > 0:
                click.echo(f"  {c:<13} {fmt(t, 's'):>10}  {100 * t / s['latency_s']:5.1f}%")
        click.echo("engines busy: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in s["utilization"].items())
                   + " (time engaged; a pass on a partly filled array counts whole, so busy can exceed MFU)")
    click.echo("time by bound (each op under its largest term; the others overlap it, so MFU can stay high):"
               if s["fidelity"] == "analytical" else "time by bound (critical path):")
    for b, t in sorted(s["time_by_bound_s"].items(), key=lambda kv: -kv[1]):
        if t > 0:
            click.echo(f"  {b:<13} {fmt(t, 's'):>10}  {100 * t / s['latency_s']:5.1f}%")
    if top:
        click.echo("top ops (summed over layers):")
        click.echo(f"  {'op':<16}{'count':>6}{'time':>12}{'share':>8}  bound")
        for role, r in res.top_ops(top).iterrows():
            click.echo(f"  {role:<16}{r['count']:>6}{fmt(r['time_s'], 's'):>12}{100 * r['share']:>7.1f}%  {r['bound']}")
    if out:
        click.echo(f"wrote {out}/ops.csv, summary.json, summary.md, roofline.png")


def _echo_mode(s: dict) -> None:
    """The mode line and, in realistic mode, the load's."""
    click.echo(f"  mode          {_mode_line(s)}")
    if s.get("mode") != "realistic":
        return
    f = s.get("sustained_clock_fraction")
    if f is not None:
        click.echo(f"  load          sustained: tensor engines at {f:.3g} of their short-run rate (power-limited "
                   f"clock; --load burst: a benchmark run)")
    elif s.get("load") == "burst":
        click.echo("  load          burst: a short benchmark run, at the clock the achievable priors were measured at")


def _mode_line(s: dict) -> str:
    if s.get("mode") != "realistic":
        return "ideal (peak rates, no software costs: a bound)"
    cal = {"priors": "achievable priors", "explicit": "explicit calibration", "stack": "no chip priors"}
    return f"realistic, stack {s['stack']} ({cal.get(s['provenance']['calibration'], '')})"


def _window(text: str) -> tuple[float, float]:
    """'6.5 s:6.8 s' -> (6.5, 6.8); bare numbers are seconds."""
    from ..units import parse

    parts = text.split(":")
    if len(parts) != 2:
        raise click.BadParameter(f"expected START:END, got {text!r}", param_hint="--trace-window")
    try:
        lo, hi = (parse(p.strip(), "time") for p in parts)
    except Exception as e:  # noqa: BLE001 - the parser's message names the bad part
        raise click.BadParameter(str(e), param_hint="--trace-window") from None
    if not hi > lo:
        raise click.BadParameter(f"END must be after START, got {text!r}", param_hint="--trace-window")
    return lo, hi


def _write_outputs(res, outputs: dict) -> None:
    if outputs["trace_path"]:
        res.write_trace(outputs["trace_path"], window_s=outputs["window"], detail=outputs.get("detail", "compact"))
    if outputs["timeline_path"]:
        res.write_timeline(outputs["timeline_path"])


def _run_produce(system, model, batch, seq_len, plan_fields, qat, teacher, teacher_system, tokens, stack, as_json,
                 targets="logits", prune=None):
    from ..codesign.produce import distill_cost, prune_heal_cost, qat_cost

    fields = {k: v for k, v in plan_fields.items() if v is not None}
    costs = []
    if qat:
        costs.append(qat_cost(system, model, qat, tokens, batch, seq_len, stack=stack, **fields))
    if prune:  # the teacher, if any, heals the pruned model
        costs.append(prune_heal_cost(system, model, prune, tokens, batch, seq_len, teacher=teacher,
                                     teacher_system=teacher_system, stack=stack, targets=targets, **fields))
    elif teacher:
        costs.append(distill_cost(system, model, teacher, tokens, batch, seq_len, teacher_system=teacher_system,
                                  stack=stack, targets=targets, **fields))
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in costs], indent=2))
        return
    for c in costs:
        parts = ", ".join(f"{k.replace('_', ' ')} {fmt(v, 's')}" for k, v in c.parts_s.items())
        click.echo(f"{c.what} of {model} on {c.system} ({c.chips} chips), {c.tokens:.3g} tokens "
                   f"({c.steps:,.0f} steps of {c.tokens_per_step:,} tokens):")
        click.echo(f"  step          {fmt(c.step_s, 's')} ({parts})")
        if c.once_s:
            click.echo("  once          " + ", ".join(f"{k.replace('_', ' ')} {fmt(v, 's')}" for k, v in c.once_s.items()))
        click.echo(f"  chip-hours    {c.chip_hours:,.0f}")
        click.echo(f"  energy        {c.energy_J / 3.6e9:,.2f} MWh ({fmt(c.energy_J, 'J')})")


def _run_train(system, model, batch, seq_len, plan_fields, chips, dtype, attention, overrides, as_json, out, top,
               compression=None, mode="realistic", stack=None, outputs=None, load="sustained"):
    from ..api import evaluate_train, system_with
    from ..errors import WorkloadError
    from ..workload.parallel import ParallelPlan

    from ..stack.presets import resolve
    from ..stack.realize import plan_defaults

    spec = system_with(system, overrides)
    if spec.chip.tp_ranks > 1:
        plan_fields["cores_per_chip"] = spec.chip.tp_ranks  # Neuron: --tp counts NeuronCores
    given = {k: v for k, v in plan_fields.items() if v is not None}  # the rest: what the framework runs
    plan = ParallelPlan(**{**plan_defaults(resolve(stack, spec.stack, mode)), **given})
    if "selective" in given and plan.recompute != "selective":
        raise click.UsageError(f"--selective says what selective recomputation keeps, but the step recomputes "
                               f"{plan.recompute!r}: add --recompute selective")
    if chips is not None and chips != plan.chips:
        raise WorkloadError(f"--chips {chips} does not match the plan: tp x pp x dp x cp = "
                            f"{plan.tp_chips} x {plan.pp} x {plan.dp} x {plan.cp} = {plan.chips} chips")
    outputs = outputs or dict(fidelity="analytical", trace_path=None, window=None, timeline_path=None)
    res = evaluate_train(spec, model, batch, seq_len, plan=plan, dtype=dtype, attention=attention,
                         compression=compression, mode=mode, stack=stack, fidelity=outputs["fidelity"], load=load)
    _write_outputs(res, outputs)
    if write_or_print_json(res, out, as_json):
        return
    s = res.summary
    ring = {"ring_sdpa": " (ring attention)", "te_p2p": " (TE p2p ring)"}.get(s.get("cp_attention"), "")
    click.echo(f"{s['model']} train step on {s['system']} ({s['chips']} x {s['chip']}; tp={s['tp']} pp={s['pp']} "
               f"dp={s['dp']} ep={s['ep']} cp={s['cp']}{ring}{' sp' if s['sp'] else ''}"
               f"{' (tp overlap)' if s.get('tp_comm_overlap') else ''}, zero {s['zero']}, "
               f"recompute {s['recompute']}{' (' + s['selective'] + ')' if s.get('selective') else ''}, "
               f"{s['schedule']}{' x' + str(s['vpp']) + ' interleaved' if s.get('vpp', 1) > 1 else ''}; "
               f"global batch {s['batch']} x {s['seq_len']} tokens, "
               f"{s['microbatches']} microbatches of {s['microbatch']}"
               f"{'' if s['attention'] == 'flash' else ', ' + s['attention'] + ' attention'})")
    _echo_mode(s)
    for w in res.warnings:  # before the figures they qualify
        click.echo(f"warning: {w}", err=True)
    band = s.get("expected_error")
    expect = f", expected +-{100 * band['relative']:.0f} % ({band['basis']})" if band else ""
    ana = f" (event tier, {s['num_tasks']:,} tasks; analytical {fmt(s['analytical_step_time_s'], 's')})" \
        if s["fidelity"] == "event" else ""
    click.echo(f"  step time     {fmt(s['step_time_s'], 's')}{expect}{ana}")
    click.echo(f"  tokens/s      {s['tokens_per_s']:,.0f}")
    click.echo(f"  MFU           {100 * s['mfu']:.1f}%  (HFU {100 * s['hfu']:.1f}%): model "
               f"{s['model_flops_per_s_per_chip'] / 1e12:,.0f} TFLOP/s per chip of {s['peak_flops_per_chip'] / 1e12:,.0f} "
               f"({s['dtype']} dense peak)")
    click.echo(f"  bubble        {100 * s['bubble_fraction']:.1f}% of the pipeline phase")
    click.echo(f"  comm          {fmt(s['comm_exposed_s'], 's')} exposed, {fmt(s['comm_hidden_s'], 's')} hidden")
    click.echo(f"  memory/chip   {fmt(s['memory_bytes_per_chip'], 'B', binary=True)} of "
               f"{fmt(s['hbm_capacity_bytes'], 'B', binary=True)}: " + ", ".join(
                   f"{k} {fmt(v, 'B', binary=True)}" for k, v in s["memory_breakdown_bytes"].items() if v > 0)
               + (f"; {fmt(s['host_offload_bytes_per_chip'], 'B', binary=True)} offloaded to host memory"
                  if s.get("host_offload_bytes_per_chip") else ""))
    click.echo(f"critical path: {s['bottleneck']}")
    for b, t in sorted(s["time_by_bound_s"].items(), key=lambda kv: -kv[1]):
        if t > 0:
            click.echo(f"  {b:<13} {fmt(t, 's'):>10}  {100 * t / s['step_time_s']:5.1f}%")
    if top:
        click.echo("top ops of one microbatch (stage 0, summed over its layers):")
        df = res.ops[res.ops["stage"] == 0]
        g = df.groupby("role")["time_s"].agg(["size", "sum"]).sort_values("sum", ascending=False).head(top)
        for role, r in g.iterrows():
            click.echo(f"  {role:<26}{int(r['size']):>6}{fmt(r['sum'], 's'):>12}")
