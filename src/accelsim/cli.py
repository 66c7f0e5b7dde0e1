"""The ``accelsim`` command line. Bad input is reported in one clear message, never a traceback."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .errors import AccelsimError
from .cliutil import friendly
from .units import fmt


_friendly = friendly


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="accelsim")
def main() -> None:
    """accelsim: cycle-approximate ML accelerator simulator and cost model."""


def _write_or_print_json(res, out, as_json) -> bool:
    """Write the result files to ``out`` if asked; with ``--json`` print the JSON summary and
    return True (the caller then prints nothing else)."""
    if out:
        res.write(out)
    if as_json:
        click.echo(res.to_json())
    return as_json


@main.command()
@click.argument("system")
@click.argument("model")
@click.option("--phase", type=click.Choice(["prefill", "decode", "train"]), default="decode", show_default=True)
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True, help="Sequences (or images) per step.")
@click.option("--seq", "seq_len", type=click.IntRange(min=1), default=None, help="Prompt length for prefill [2048].")
@click.option("--context", "context_len", type=click.IntRange(min=0), default=None, help="Cached tokens for decode [2048].")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tensor-parallel degree (chips; on Neuron systems in training: NeuronCores).")
@click.option("--pp", type=click.IntRange(min=1), default=1, show_default=True, help="Pipeline stages (train).")
@click.option("--dp", type=click.IntRange(min=1), default=1, show_default=True, help="Data-parallel replicas (train).")
@click.option("--ep", type=click.IntRange(min=1), default=1, show_default=True, help="Expert-parallel degree (train, MoE).")
@click.option("--cp", type=click.IntRange(min=1), default=1, show_default=True, help="Context-parallel degree (train).")
@click.option("--sp", is_flag=True, help="Megatron sequence parallelism (train).")
@click.option("--microbatch", type=click.IntRange(min=1), default=1, show_default=True, help="Sequences per microbatch (train).")
@click.option("--chips", type=click.IntRange(min=1), default=None, help="Total chips (train); checked against tp x pp x dp x cp.")
@click.option("--zero", type=click.IntRange(0, 3), default=0, show_default=True, help="ZeRO stage (train; 3 = FSDP).")
@click.option("--recompute", type=click.Choice(["none", "selective", "full"]), default="none", show_default=True)
@click.option("--schedule", type=click.Choice(["1f1b", "gpipe"]), default="1f1b", show_default=True, help="Pipeline schedule (train).")
@click.option("--dtype", type=click.Choice(["bf16", "fp16", "fp8", "fp32"]), default="bf16", show_default=True)
@click.option("--attention", type=click.Choice(["flash", "unfused"]), default="flash", show_default=True)
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
              help="analytical: closed form per op; event: tile tasks simulated on engines, DMA, SRAM and HBM.")
@click.option("--trace", "trace_path", type=click.Path(dir_okay=False), default=None,
              help="Write a Chrome trace (Perfetto JSON) of the event-tier run.")
@click.option("--timeline", "timeline_path", type=click.Path(dir_okay=False), default=None,
              help="Write a timeline / utilization PNG of the event-tier run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Write ops.csv, summary.json, summary.md, roofline.png here.")
@click.option("--top", type=click.IntRange(min=0), default=8, show_default=True, help="Op roles to list.")
@_friendly
def run(system, model, phase, batch, seq_len, context_len, tp, pp, dp, ep, cp, sp, microbatch, chips, zero, recompute,
        schedule, dtype, attention, weights, activations, kv_cache, sparsity, recipe, overrides, calibration, fidelity,
        trace_path, timeline_path, as_json, out, top):
    """Predict one prefill, decode or training step of MODEL on SYSTEM (preset names or YAML
    files). For --phase train, --batch is the global batch."""
    from .api import evaluate
    from .arch.presets import load_system
    from .compress_cli import recipe_from_options

    compression = recipe_from_options(recipe, weights, activations, kv_cache, sparsity)

    if (trace_path or timeline_path) and fidelity != "event":
        raise click.UsageError("--trace and --timeline need --fidelity event")
    if calibration is not None:
        system = load_system(system, overrides, calibration=calibration)
        overrides = ()
    if phase == "train":
        return _run_train(system, model, batch, seq_len or 2048, dict(tp=tp, pp=pp, dp=dp, ep=ep, cp=cp, sp=sp,
                          microbatch=microbatch, zero=zero, recompute=recompute, schedule=schedule), chips, dtype,
                          attention, overrides, as_json, out, top, compression)
    if any(v != 1 for v in (pp, dp, ep, cp)) or zero or chips or sp:
        raise click.UsageError("--pp/--dp/--ep/--cp/--sp/--zero/--chips apply to --phase train")
    res = evaluate(system, model, phase=phase, batch=batch, seq_len=seq_len, context_len=context_len,
                   tp=tp, dtype=dtype, attention=attention, overrides=overrides, fidelity=fidelity,
                   compression=compression)
    if trace_path:
        res.write_trace(trace_path)
    if timeline_path:
        res.write_timeline(timeline_path)
    if _write_or_print_json(res, out, as_json):
        return
    s = res.summary
    shape = f"seq {s['seq_len']}" if phase == "prefill" else f"context {s['context_len']}"
    click.echo(f"{s['model']} {phase} on {s['system']} ({s['chip']}, tp={s['tp']}, {s['dtype']}, "
               f"batch {s['batch']}, {shape}, {s['attention']} attention)")
    if compression is not None:
        click.echo(f"  compression   {compression.describe()}")
    click.echo(f"  latency       {fmt(s['latency_s'], 's')} per step ({s['fidelity']})")
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
        click.echo("utilization: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in s["utilization"].items()))
    click.echo("time by bound:" if s["fidelity"] == "analytical" else "time by bound (critical path):")
    for b, t in sorted(s["time_by_bound_s"].items(), key=lambda kv: -kv[1]):
        if t > 0:
            click.echo(f"  {b:<13} {fmt(t, 's'):>10}  {100 * t / s['latency_s']:5.1f}%")
    if top:
        click.echo("top ops (summed over layers):")
        click.echo(f"  {'op':<16}{'count':>6}{'time':>12}{'share':>8}  bound")
        for role, r in res.top_ops(top).iterrows():
            click.echo(f"  {role:<16}{r['count']:>6}{fmt(r['time_s'], 's'):>12}{100 * r['share']:>7.1f}%  {r['bound']}")
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)
    if out:
        click.echo(f"wrote {out}/ops.csv, summary.json, summary.md, roofline.png")


def _run_train(system, model, batch, seq_len, plan_fields, chips, dtype, attention, overrides, as_json, out, top,
               compression=None):
    from .api import evaluate_train
    from .arch.presets import load_system
    from .arch.spec import SystemSpec
    from .errors import WorkloadError
    from .workload.parallel import ParallelPlan

    spec = system if isinstance(system, SystemSpec) else load_system(system, overrides)
    if spec.chip.kind == "npu" and spec.chip.name.startswith(("trainium1", "inferentia2")):
        plan_fields["cores_per_chip"] = spec.chip.num_cores  # Neuron: --tp counts NeuronCores
    plan = ParallelPlan(**plan_fields)
    if chips is not None and chips != plan.chips:
        raise WorkloadError(f"--chips {chips} does not match the plan: tp x pp x dp x cp = "
                            f"{plan.tp_chips} x {plan.pp} x {plan.dp} x {plan.cp} = {plan.chips} chips")
    res = evaluate_train(spec, model, batch, seq_len, plan=plan, dtype=dtype, attention=attention,
                         compression=compression)
    if _write_or_print_json(res, out, as_json):
        return
    s = res.summary
    click.echo(f"{s['model']} train step on {s['system']} ({s['chips']} x {s['chip']}; tp={s['tp']} pp={s['pp']} "
               f"dp={s['dp']} ep={s['ep']} cp={s['cp']}{' sp' if s['sp'] else ''}, zero {s['zero']}, "
               f"recompute {s['recompute']}, {s['schedule']}; global batch {s['batch']} x {s['seq_len']} tokens, "
               f"{s['microbatches']} microbatches of {s['microbatch']})")
    click.echo(f"  step time     {fmt(s['step_time_s'], 's')}")
    click.echo(f"  tokens/s      {s['tokens_per_s']:,.0f}")
    click.echo(f"  MFU           {100 * s['mfu']:.1f}%  (HFU {100 * s['hfu']:.1f}%)")
    click.echo(f"  bubble        {100 * s['bubble_fraction']:.1f}% of the pipeline phase")
    click.echo(f"  comm          {fmt(s['comm_exposed_s'], 's')} exposed, {fmt(s['comm_hidden_s'], 's')} hidden")
    click.echo(f"  memory/chip   {fmt(s['memory_bytes_per_chip'], 'B', binary=True)} of "
               f"{fmt(s['hbm_capacity_bytes'], 'B', binary=True)}: " + ", ".join(
                   f"{k} {fmt(v, 'B', binary=True)}" for k, v in s["memory_breakdown_bytes"].items() if v > 0))
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
    for w in res.warnings:
        click.echo(f"warning: {w}", err=True)


@main.command()
@click.argument("m", type=click.IntRange(min=1))
@click.argument("n", type=click.IntRange(min=1))
@click.argument("k", type=click.IntRange(min=1))
@click.option("--rows", type=click.IntRange(min=1), required=True, help="Array rows.")
@click.option("--cols", type=click.IntRange(min=1), required=True, help="Array columns.")
@click.option("--dataflow", type=click.Choice(["ws", "os", "is"]), required=True)
@click.option("--json", "as_json", is_flag=True)
def systolic(m, n, k, rows, cols, dataflow, as_json):
    """Compute cycles of one M x N x K GEMM on one systolic array, as SCALE-Sim counts them."""
    from .cost.systolic import scalesim_report

    rep = scalesim_report(m, n, k, rows, cols, dataflow)
    rep = {"M": m, "N": n, "K": k, "rows": rows, "cols": cols, "dataflow": dataflow, **rep}
    if as_json:
        click.echo(json.dumps(rep))
    else:
        click.echo(f"{m}x{n}x{k} on {rows}x{cols} ({dataflow}): {rep['compute_cycles']} cycles, "
                   f"{rep['folds']} folds, mapping efficiency {100 * rep['mapping_efficiency']:.1f}%, "
                   f"utilization {100 * rep['utilization']:.2f}%")


@main.command()
@click.option("--json", "as_json", is_flag=True)
@_friendly
def presets(as_json):
    """List the shipped system and model presets."""
    from .arch.presets import list_presets, load_system
    from .workload import list_models, load_model

    systems = []
    for name in list_presets():
        s = load_system(name)
        systems.append({"name": name, "chip": s.chip.name, "num_chips": s.num_chips,
                        "interconnect": s.interconnect.kind if s.interconnect else None,
                        "peak_bf16_flops_per_chip": s.chip.peak_flops("bf16"), "hbm_bytes_per_chip": s.chip.hbm.capacity_bytes,
                        "hbm_bandwidth_Bps": s.chip.hbm.bandwidth_Bps, "description": s.description})
    models = [{"name": n, "params": load_model(n).params()} for n in list_models()]
    if as_json:
        click.echo(json.dumps({"systems": systems, "models": models}, indent=2))
        return
    click.echo(f"systems:\n  {'name':<16}{'chip':<24}{'chips':>6}  {'interconnect':<16}{'bf16/chip':>14}"
               f"{'HBM/chip':>11}{'HBM BW':>12}")
    for s in systems:
        click.echo(f"  {s['name']:<16}{s['chip']:<24}{s['num_chips']:>6}  {s['interconnect'] or '-':<16}"
                   f"{fmt(s['peak_bf16_flops_per_chip'], 'FLOP/s'):>14}{fmt(s['hbm_bytes_per_chip'], 'B', binary=True):>11}"
                   f"{fmt(s['hbm_bandwidth_Bps'], 'B/s'):>12}")
    click.echo("models:")
    for m in models:
        click.echo(f"  {m['name']:<16}{fmt(m['params'], ''):>10} params")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path())
def validate(files):
    """Check system (or model) YAML files; report every problem with its field path and file."""
    from .arch.presets import load_system
    from .configio import load_yaml
    from .workload import load_model

    bad = 0
    for f in files:
        try:
            data = load_yaml(Path(f))
            if "chip" in data or "interconnect" in data or "num_chips" in data:
                s = load_system(f)
                click.echo(f"ok: {f}: system {s.name}, {s.num_chips} x {s.chip.name}")
            else:
                m = load_model(f)
                click.echo(f"ok: {f}: model {m.name}, {m.params() / 1e9:.2f} B params")
        except AccelsimError as e:
            bad += 1
            click.echo(f"error: {e}", err=True)
    sys.exit(1 if bad else 0)



@main.command()
@click.argument("kind", type=click.Choice(["allreduce", "allgather", "reducescatter", "alltoall", "broadcast",
                                           "sendrecv"]))
@click.option("--system", "system_name", required=True, help="System preset name or YAML file.")
@click.option("--bytes", "size", required=True, metavar="B",
              help="Bytes per rank: the all-reduce buffer, reduce-scatter input, all-gather contribution, "
                   "all-to-all send buffer; unit strings allowed (\"64 MiB\").")
@click.option("--ranks", type=click.IntRange(min=1), required=True,
              help="Ranks (chips 0..N-1). More than the system's chips replicates its node over its scale-out network.")
@click.option("--algorithm", default=None, help="Force an algorithm (ring, bidirectional_ring, multidim_ring, "
                                                "direct, in_switch, halving_doubling, recursive_doubling, tree, "
                                                "hierarchical); default: the fastest predicted.")
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True)
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a system field (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_friendly
def collective(kind, system_name, size, ranks, algorithm, fidelity, overrides, as_json):
    """Time one collective (KIND) over --ranks chips of --system."""
    from .arch.presets import load_system
    from .arch.topology import scale_out_system
    from .errors import WorkloadError
    from .cost.collectives import BUSBW_FACTOR, collective_cost
    from .units import parse

    try:
        nbytes = parse(size, "bytes")
    except ValueError as e:
        raise WorkloadError(f"--bytes: {e}") from None
    system = load_system(system_name, overrides)
    if ranks > system.num_chips and system.scale_out is not None:
        node = system.chips_per_node
        system = scale_out_system(system, -(-ranks // node) * node)
    res = collective_cost(system, kind, nbytes, ranks, algorithm)
    out = {"kind": kind, "system": system.name, "chips": system.num_chips, "ranks": ranks, "bytes_per_rank": nbytes,
           "algorithm": res.algorithm, "detail": res.detail, "fidelity": fidelity, "time_s": res.time_s,
           "busbw_Bps": res.busbw_Bps, "algbw_Bps": res.algbw_Bps, "bandwidth_s": res.bandwidth_s,
           "latency_s": res.latency_s, "bytes_sent_per_chip": res.bytes_sent_per_chip}
    if fidelity == "event":
        from .sim.collective import simulate_collective

        t, sim = simulate_collective(system, kind, nbytes, ranks, res.algorithm)
        size_S = nbytes * (ranks if kind == "allgather" else 1)
        algbw = size_S / t if t > 0 else 0.0
        out.update(analytical_time_s=res.time_s, time_s=t, algbw_Bps=algbw,
                   busbw_Bps=algbw * BUSBW_FACTOR[kind](ranks), num_tasks=sim.schedule.num_tasks)
    if as_json:
        click.echo(json.dumps(out))
        return
    algo = res.algorithm + (f" ({res.detail})" if res.detail else "")
    click.echo(f"{kind} of {fmt(nbytes, 'B', binary=True)} per rank over {ranks} ranks on {system.name}: "
               f"{fmt(out['time_s'], 's')} ({fidelity}), busbw {fmt(out['busbw_Bps'], 'B/s')}, "
               f"algbw {fmt(out['algbw_Bps'], 'B/s')}, algorithm {algo}")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="SQLite tracking database (created if missing).")
@click.option("--label", default=None, help="A note stored with the run (branch, change, ...).")
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True)
@click.option("--calibration", type=click.Path(exists=True, dir_okay=False), default=None,
              help="calibration.yaml applied to the systems before predicting.")
@click.option("--threshold", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Report kinds whose MAPE grew by more than this many percentage points since the previous run.")
@_friendly
def track(files, db_path, label, fidelity, calibration, threshold):
    """Correlate measurement FILES and record the run in a tracking database."""
    from .correlate import track as tracking

    run_id, res = tracking.track(files, db_path, label=label, fidelity=fidelity, calibration=calibration)
    o = res.overall
    mape = o.get("mape")
    mape_s = "n/a" if mape is None or mape != mape else f"{tracking.PERCENT * mape:.2f}%"
    counts = f" ({o['predicted']} of {o['rows']} rows predicted)" if "predicted" in o and "rows" in o else ""
    click.echo(f"run {run_id} recorded in {db_path}: MAPE {mape_s}{counts}")
    reg = tracking.regressions(db_path, threshold)
    for r in reg[reg["run_id"] == run_id].itertuples():
        click.echo(f"regression: {r.kind} MAPE {tracking.PERCENT * r.prev_mape:.2f}% (run {r.prev_run_id}) -> "
                   f"{tracking.PERCENT * r.mape:.2f}% (+{r.delta_pp:.2f} pp)", err=True)


@main.command()
@click.option("--db", "db_path", required=True, type=click.Path(dir_okay=False), help="SQLite tracking database.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="HTML file to write.")
@click.option("--threshold", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Flag runs where a kind's MAPE grew by more than this many percentage points.")
@_friendly
def dashboard(db_path, out_path, threshold):
    """Write a self-contained static HTML dashboard of a tracking database."""
    from pathlib import Path as _Path

    from .correlate import dashboard as dash
    from .correlate import track as tracking
    from .errors import MeasurementError

    if not _Path(db_path).is_file():
        raise MeasurementError(f"{db_path}: tracking database does not exist")
    dash.write(db_path, out_path, threshold)
    n_runs = len(tracking.runs(db_path))
    n_reg = len(tracking.regressions(db_path, threshold))
    click.echo(f"wrote {out_path} ({n_runs} run(s), {n_reg} regression(s) beyond {threshold:g} pp)")


@main.command()
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              help="auto: cuda when PyTorch sees a GPU, else cpu.")
@click.option("--quick", is_flag=True, help="Few small shapes and repeats (seconds on a CPU): a smoke test.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Measurement CSV to write (correlate schema).")
@click.option("--system", default=None,
              help="accelsim preset (or YAML) that models this device; default from the GPU name, else unknown-<device>.")
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default=None, help="Default: bf16 on cuda, fp32 on cpu.")
@click.option("--warmup", type=click.IntRange(min=0), default=None, help="Warm-up calls per case.")
@click.option("--repeats", type=click.IntRange(min=1), default=None, help="Timed calls per case (the median is kept).")
@click.option("--attention", "attention_path", type=click.Path(dir_okay=False), default=None,
              help="Also time scaled_dot_product_attention and write it to this separate CSV (no correlate kind).")
@_friendly
def bench(device, quick, out_path, system, dtype, warmup, repeats, attention_path):
    """Time GEMMs, memory copies, norms, activations and all-reduces on this machine with PyTorch
    and write them as measurement rows for accelsim correlate."""
    import time as _time

    from .bench import run_bench, write_csv

    t0 = _time.perf_counter()

    def progress(row):
        click.echo(f"  {row['id']:<34}{fmt(row['measured_time_s'], 's'):>12}", err=True)

    rows, att = run_bench(device, quick=quick, system=system, dtype=dtype, warmup=warmup, repeats=repeats,
                          attention=attention_path is not None, progress=progress)
    write_csv(rows, out_path)
    if att is not None:
        write_csv(att, attention_path)
    sys_names = sorted(rows["system"].unique())
    click.echo(f"wrote {len(rows)} rows ({', '.join(dict.fromkeys(rows['kind']))}) to {out_path} "
               f"in {_time.perf_counter() - t0:.1f} s; system {', '.join(sys_names)}")
    if att is not None:
        click.echo(f"wrote {len(att)} attention rows to {attention_path}")
    unknown = [s for s in sys_names if s.startswith("unknown-")]
    if unknown:
        click.echo(f"warning: no accelsim preset is known for this device, so rows are labelled system "
                   f"{unknown[0]!r}; pass --system NAME (a preset or YAML that models it) before correlating",
                   err=True)


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--fidelity", type=click.Choice(["analytical", "event"]), default="analytical", show_default=True,
              help="event: kernel, layer and collective rows run in the event tier (training steps stay analytical).")
@click.option("--calibration", type=click.Path(dir_okay=False), default=None,
              help="Calibration YAML (from `accelsim calibrate`) applied to the rows on its chip.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Write per_row.csv, predicted_vs_measured.png and error_by_kind.png here.")
@_friendly
def correlate(files, fidelity, calibration, as_json, out):
    """Predict every measured row of FILES (CSV in the measurement schema) and report the error:
    MAPE, median and worst APE and bias (geometric mean of predicted / measured) per kind."""
    from .correlate.compare import correlate as run_correlation

    res = run_correlation(list(files), fidelity=fidelity, calibration=calibration)
    if _write_or_print_json(res, out, as_json):
        return
    o = res.overall
    cal = f"calibrated by {calibration}" if calibration else "uncalibrated"
    click.echo(f"{o['rows']} rows: {o['predicted']} predicted, {o['skipped']} skipped ({fidelity}, {cal})")
    click.echo(res.table())
    for s in res.skipped:
        click.echo(f"skipped {s['id']}: {s['reason']}")
    if out:
        click.echo(f"wrote {out}/per_row.csv, predicted_vs_measured.png, error_by_kind.png")


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--system", "system_name", required=True,
              help="Preset (or YAML) whose chip is calibrated; rows on other chips are ignored.")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False),
              help="Calibration YAML to write (for --calibration and load_system(..., calibration=)).")
@click.option("--fields", default=None, metavar="A,B,C",
              help="Calibration fields to fit (default: every efficiency, the tensor and vector launch "
                   "overheads and the collective overhead).")
@click.option("--k", "k_folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="Folds of the cross-validation.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold assignment.")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration file's content as JSON.")
@_friendly
def calibrate(files, system_name, out_path, fields, k_folds, seed, as_json):
    """Fit the calibration fields of a chip to measured FILES (robust least squares on
    log(predicted / measured), efficiencies in (0, 1], overheads >= 0) and report the error
    before, after (in-sample) and k-fold cross-validated."""
    from .correlate.calibrate import MEANING
    from .correlate.calibrate import calibrate as fit

    res = fit(list(files), system_name, fields=fields, k=k_folds, seed=seed)
    res.write(out_path)
    if as_json:
        click.echo(json.dumps(res.to_dict(), indent=2))
        return
    click.echo(f"calibrated {res.chip} (preset {res.system}) on {len(res.per_row)} rows"
               + (f"; {len(res.ignored)} rows ignored (other chips or not predictable)" if res.ignored else ""))
    for f in res.fitted:
        v = res.values[f]
        shown = fmt(v, "s") if f.endswith("_s") else f"{100 * v:.1f}%"
        lo, hi = res.folds[f].min(), res.folds[f].max()
        spread = f"{fmt(lo, 's')} .. {fmt(hi, 's')}" if f.endswith("_s") else f"{100 * lo:.1f}% .. {100 * hi:.1f}%"
        click.echo(f"  {f:<26}{shown:>10}   {MEANING.get(f, '')} (folds {spread})")
    for f in res.unconstrained:
        click.echo(f"  {f:<26}{'-':>10}   not determined by these rows: kept at {res.values[f]:g}")
    click.echo(res.table())
    click.echo(f"wrote {out_path}")


from .sweep.cli import sweep_command; main.add_command(sweep_command)  # noqa: E402,E702  (accelsim sweep)
from .compress_cli import formats_command, sqnr_command  # noqa: E402  (accelsim formats / sqnr)
main.add_command(formats_command)
main.add_command(sqnr_command)


if __name__ == "__main__":
    main()
