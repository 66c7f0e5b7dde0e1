"""``accelsim throughput``: offline serving throughput (every request queued at once)."""

from __future__ import annotations

import json

import click

from .util import friendly


@click.command("throughput")
@click.argument("system")
@click.argument("model")
@click.option("--input-len", type=click.IntRange(min=1), required=True, help="Prompt tokens per request.")
@click.option("--output-len", type=click.IntRange(min=1), required=True, help="Generated tokens per request.")
@click.option("--batch", type=click.IntRange(min=1), default=None,
              help="Requests in flight [the engine's: as many as its KV cache admits, where the stack's engine "
                   "sets it].")
@click.option("--tp", type=click.IntRange(min=1), default=1, show_default=True,
              help="Tensor-parallel degree (chips; on AWS Neuron systems: NeuronCores).")
@click.option("--dtype", type=click.Choice(["bf16", "fp16", "fp8", "fp32"]), default="bf16", show_default=True)
@click.option("--compression", default="", help="Weight / activation format tag, e.g. fp8, w4a16-g128.")
@click.option("--stack", "stack_name", default=None, help="Software stack [the system's stack].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@friendly
def throughput_command(system, model, input_len, output_len, batch, tp, dtype, compression, stack_name, as_json):
    """Offline throughput of MODEL on SYSTEM: requests of --input-len prompt and --output-len
    generated tokens, all queued at once, run in waves of the batch (one prefill of the wave,
    then its decode steps at the mean context), as accelsim predicts published throughput rows.
    Without --batch the stack's serving engine sets it where it does (TensorRT-LLM: as many
    requests as its KV cache admits at their whole length, up to trtllm-bench's max batch)."""
    from ..correlate.throughput import offline_throughput

    r = offline_throughput(system, model, input_len, output_len, tp=tp, dtype=dtype, stack=stack_name, batch=batch,
                           compression=compression)
    if as_json:
        click.echo(json.dumps(r, indent=1))
        return
    click.echo(f"{model} offline throughput on {system} (tp={tp}, {dtype}{', compression ' + compression if compression else ''}, "
               f"{input_len} in / {output_len} out, stack {r['stack']})")
    click.echo(f"  in flight     {r['note'] or f'batch {batch} (given)'}")
    click.echo(f"  throughput    {r['output_tokens_per_s']:,.0f} output tokens/s ({r['output_tokens_per_s_per_chip']:,.0f} "
               f"per chip on {r['chips']}), {1e6 * r['seconds_per_output_token']:.1f} us per output token")
    click.echo(f"  bound         {r['bound']}")
