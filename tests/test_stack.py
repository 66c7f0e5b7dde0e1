"""Software stacks (stacks/*.yaml, accelsim.stack) and collectives under a collective library:
closed forms with a latency floor and protocols, the shape of a size sweep (latency plateau,
knee, bandwidth plateau), the CLI sweep, rows measured under a stack, and the prior fit."""

from __future__ import annotations

import json
import math

import pytest
from click.testing import CliRunner

from accelsim.arch.presets import list_presets, load_system
from accelsim.cli import main
from accelsim.correlate import correlate
from accelsim.correlate.library_fit import fit_library
from accelsim.correlate.schema import MeasurementRow
from accelsim.cost.collectives import collective_cost
from accelsim.sim.collective import simulate_collective
from accelsim.errors import ConfigError, MeasurementError, WorkloadError
from accelsim.stack import CollectiveLibrary, Protocol, list_stacks, load_stack, resolve

KiB, MiB, GiB = 2**10, 2**20, 2**30


def lib(call=10e-6, ll=1e-6, simple=5e-6, frac=0.8, algorithms=("ring",)) -> CollectiveLibrary:
    return CollectiveLibrary(name="test", call_latency_s=call, bandwidth_fraction=frac, algorithms=algorithms,
                             protocols=(Protocol(name="LL", bandwidth_fraction=0.5, step_latency_s=ll),
                                        Protocol(name="Simple", bandwidth_fraction=1.0, step_latency_s=simple)))


def test_every_shipped_stack_loads_and_every_preset_names_a_known_stack():
    names = list_stacks()
    assert {"cuda-native", "cuda-eager", "cuda-graphs", "rocm-native", "neuron", "xla-tpu"} <= set(names)
    for n in names:
        assert load_stack(n).name == n
    for p in list_presets():
        s = load_system(p)
        if s.stack:
            assert s.stack in names


def test_a_stack_extends_its_base():
    base, eager = load_stack("cuda-native"), load_stack("cuda-eager")
    assert eager.collectives == base.collectives          # NCCL comes from the base file
    assert eager.runtime.name == "PyTorch eager" != base.runtime.name


def test_bad_stacks_are_refused_with_file_and_field(tmp_path):
    with pytest.raises(ConfigError, match="unknown stack 'cuda-eagre'.*cuda-eager"):
        load_stack("cuda-eagre")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nruntime: {name: r}\ncollectives:\n  name: c\n  call_latency_s: -1 us\n"
                   "  bandwidth_fraction: 0.5\n  protocols: [{name: S, bandwidth_fraction: 1, step_latency_s: 1 us}]\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*collectives\.call_latency_s"):
        load_stack(bad)
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop\n")
    with pytest.raises(ConfigError, match="base"):
        load_stack(loop)
    with pytest.raises(ValueError, match="no max_bytes"):
        CollectiveLibrary(name="x", call_latency_s=0, bandwidth_fraction=1,
                          protocols=(Protocol(name="LL", bandwidth_fraction=0.5, step_latency_s=0, max_bytes=1024),))
    with pytest.raises(WorkloadError, match="algorithms: unknown 'rign'"):
        collective_cost(load_system("dgx-a100"), "allreduce", 1 * MiB, 8, library=lib(algorithms=("rign",)))


def test_mode_resolution():
    assert resolve(None, "cuda-eager", "ideal") is None
    assert resolve(None, "cuda-eager").name == "cuda-eager"
    assert resolve("megatron-cuda", "cuda-eager").name == "megatron-cuda"  # the stack given wins
    assert resolve("vllm", "rocm-graphs").name == "vllm-rocm"  # a framework name on the system's platform
    # a stack of another platform is refused, naming the ones that run there (a Neuron stack on a CUDA system
    # was accepted, and its runtime and collective library priced a chip they never run on)
    with pytest.raises(ConfigError, match="'neuron' runs on neuron, but this system's chip runs cuda stacks"):
        resolve("neuron", "cuda-eager")
    assert resolve(None, "") is None
    with pytest.raises(ConfigError, match="mode"):
        resolve(None, "cuda-eager", "optimistic")
    # a stack in ideal mode is refused, as the CLI refuses --ideal with --stack (it was dropped silently)
    with pytest.raises(ConfigError, match="'vllm' given in ideal mode"):
        resolve("vllm", "cuda-eager", "ideal")


def test_ring_allreduce_closed_form_with_latency_floor_and_protocols():
    """dgx-a100 (switch, 12 x 25 GB/s = 300 GB/s per GPU and direction), ring over p = 8:
    T = call + 2(p-1) (step + n / (p B f q)) with the faster of LL (q = 1/2) and Simple (q = 1)."""
    s = load_system("dgx-a100")
    B, p, L = 300e9, 8, lib()
    for n in (8.0, 64 * KiB, 1 * MiB, 256 * MiB):
        t_ll = 10e-6 + 2 * (p - 1) * (1e-6 + n / (p * B * 0.8 * 0.5))
        t_simple = 10e-6 + 2 * (p - 1) * (5e-6 + n / (p * B * 0.8))
        r = collective_cost(s, "allreduce", n, p, library=L)
        assert r.algorithm == "ring"
        assert r.time_s == pytest.approx(min(t_ll, t_simple), rel=1e-9)
        assert r.protocol == ("LL" if t_ll < t_simple else "Simple")
    # the latency floor: an 8-byte all-reduce costs the call plus 14 LL steps, not ~0
    assert collective_cost(s, "allreduce", 8, p, library=L).time_s == pytest.approx(10e-6 + 14e-6, rel=1e-3)
    # the knee sits where the protocols cross: 14 * 4 us = 14 n / (8 B f) -> n = 4 us * 8 * 240 GB/s
    knee = 4e-6 * 8 * B * 0.8
    assert collective_cost(s, "allreduce", knee * 0.9, p, library=L).protocol == "LL"
    assert collective_cost(s, "allreduce", knee * 1.1, p, library=L).protocol == "Simple"


def test_point_to_point_kinds_run_the_library_p2p_protocols():
    """All-to-all is grouped sends and receives: under a library whose p2p kernels run LL and
    Simple only, it never runs LL128, and LL only while the message to one peer is within
    p2p_ll_max_bytes. dgx-a100 through its switch, direct plan, one step:
    T = call + step + (p-1) n / (p B f q)."""
    s = load_system("dgx-a100")
    B, p = 300e9, 8
    three = CollectiveLibrary(name="test", call_latency_s=10e-6, bandwidth_fraction=0.8, algorithms=("ring",),
                              protocols=(Protocol(name="LL", bandwidth_fraction=0.5, step_latency_s=1e-6),
                                         Protocol(name="LL128", bandwidth_fraction=0.9375, step_latency_s=2e-6),
                                         Protocol(name="Simple", bandwidth_fraction=1.0, step_latency_s=8e-6)))
    p2p = three.model_copy(update={"p2p_protocols": ("LL", "Simple"), "p2p_ll_max_bytes": 16 * KiB})
    n = 8 * MiB  # 1 MiB to each peer
    assert collective_cost(s, "alltoall", n, p, library=three).protocol == "LL128"
    r = collective_cost(s, "alltoall", n, p, library=p2p)
    assert r.protocol == "Simple"
    assert r.time_s == pytest.approx(10e-6 + 8e-6 + (p - 1) * n / (p * B * 0.8), rel=1e-9)
    assert collective_cost(s, "allgather", n / p, p, library=p2p).protocol == "LL128"  # a collective keeps LL128
    small = collective_cost(s, "alltoall", 8 * 16 * KiB, p, library=p2p)  # 16 KiB to each peer: LL
    assert small.protocol == "LL"
    assert collective_cost(s, "alltoall", 8 * 17 * KiB, p, library=p2p).protocol == "Simple"
    with pytest.raises(ValueError, match="p2p_protocols.*'LL256' is not one of the protocols"):
        three.model_copy(update={"p2p_protocols": ("LL256",)}).model_validate(
            {**three.model_dump(), "p2p_protocols": ("LL256",)})


def test_point_to_point_kinds_pay_a_host_cost_per_operation():
    """An all-to-all is p - 1 sends and p - 1 receives enqueued in one group, each a host-side
    operation. dgx-a100 switch, direct plan, p = 8, 1 MiB to each peer under Simple:
    T = call + base + step + (p-1) n / (p B f) + 2 (p-1) h; an all-gather pays no h."""
    from accelsim.correlate.predict import Predictor

    s = load_system("dgx-a100")
    B, p, n = 300e9, 8, 8 * MiB
    lib = CollectiveLibrary(name="test", call_latency_s=10e-6, bandwidth_fraction=0.8, algorithms=("ring",),
                            p2p_protocols=("LL", "Simple"), p2p_ll_max_bytes=16 * KiB,
                            protocols=(Protocol(name="LL", bandwidth_fraction=0.5, step_latency_s=1e-6),
                                       Protocol(name="Simple", bandwidth_fraction=1.0, step_latency_s=8e-6,
                                                base_latency_s=30e-6)))
    host = lib.model_copy(update={"p2p_op_host_s": 0.5e-6})
    a2a = collective_cost(s, "alltoall", n, p, library=lib)
    assert a2a.protocol == "Simple"
    assert a2a.time_s == pytest.approx(10e-6 + 30e-6 + 8e-6 + (p - 1) * n / (p * B * 0.8), rel=1e-9)
    assert collective_cost(s, "alltoall", n, p, library=host).time_s == pytest.approx(a2a.time_s + 14 * 0.5e-6, rel=1e-9)
    ag = collective_cost(s, "allgather", n, p, library=lib)
    assert collective_cost(s, "allgather", n, p, library=host).time_s == pytest.approx(ag.time_s, rel=1e-12)
    # the event tier pays the same
    t, _ = simulate_collective(s, "alltoall", n, p, library=host)
    assert t == pytest.approx(a2a.time_s + 14 * 0.5e-6, rel=0.02)
    # a harness whose one thread drives 8 devices pays the host part once per device
    st = load_stack("cuda-native")
    h = st.runtime.collective_launch_s + 14 * st.collectives.p2p_op_host_s
    assert st.collectives.p2p_op_host_s > 0
    row = dict(id="x", kind="alltoall", system="dgx-a100", bytes=8.0, ranks=8, dtype="fp32", stack="cuda-native",
               measured_time_s=1e-4)
    pr = Predictor()
    one = pr.predict(MeasurementRow(**row)).time_s
    eight = pr.predict(MeasurementRow(**row, gpus_per_process=8)).time_s
    assert eight - one == pytest.approx(7 * h, rel=1e-9)


def test_ideal_mode_is_the_old_bound():
    s = load_system("dgx-h100")
    r = collective_cost(s, "allreduce", 64 * MiB, 8)
    assert r.algorithm == "in_switch" and r.protocol == ""
    assert r.time_s == pytest.approx(64 * MiB / 450e9)
    real = collective_cost(s, "allreduce", 64 * MiB, 8, library=load_stack("cuda-eager").collectives)
    assert real.time_s > r.time_s


@pytest.mark.parametrize("system,ranks", [("dgx-a100", 8), ("dgx-h100", 8), ("mi300x-8", 8), ("trn2-48xl", 16)])
def test_sweep_has_a_latency_plateau_a_knee_and_a_bandwidth_plateau(system, ranks):
    s = load_system(system)
    L = load_stack(s.stack).collectives
    sizes = [8 * 2**i for i in range(32)]  # 8 B .. 16 GiB
    res = [collective_cost(s, "allreduce", n, ranks, library=L) for n in sizes]
    t = [r.time_s for r in res]
    bw = [r.busbw_Bps for r in res]
    assert all(b >= a * (1 - 1e-9) for a, b in zip(t, t[1:]))            # more bytes never take less time
    assert t[0] > 1e-6 and t[3] < 1.1 * t[0]                               # a latency floor: 8 B ~ 64 B
    assert bw[-1] == pytest.approx(bw[-2], rel=0.05)                       # bandwidth plateau at 8-16 GiB
    ideal = collective_cost(s, "allreduce", sizes[-1], ranks).busbw_Bps
    assert bw[-1] < ideal                                                  # below the peak-link bound
    assert bw[10] < 0.5 * bw[-1]                                           # 8 KiB is latency bound


def cli(*args):
    return CliRunner().invoke(main, ["collective", *map(str, args)])


def test_cli_sweep_table_json_and_plot(tmp_path):
    r = cli("allreduce", "--system", "dgx-a100", "--ranks", 8, "--sweep", "8B:16GiB")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "realistic, stack cuda-graphs" in lines[0]
    assert len(lines) == 2 + 32 and lines[2].split()[0:2] == ["8", "B"] and "16 GiB" in lines[-1]
    assert all("/" in line for line in lines[2:])                          # algorithm / protocol
    out = json.loads(cli("allreduce", "--system", "mi300x-8", "--ranks", 8, "--sweep", "1KiB:1MiB", "--json").output)
    assert [o["bytes_per_rank"] for o in out] == [1024 * 2**i for i in range(11)]
    assert all(o["mode"] == "realistic" and o["stack"] == "rocm-graphs" and o["protocol"] for o in out)
    png = tmp_path / "sweep.png"
    r = cli("allreduce", "--system", "trn2-48xl", "--ranks", 16, "--sweep", "8B:1GiB", "--plot", png)
    assert r.exit_code == 0 and png.read_bytes()[:4] == b"\x89PNG"
    ideal = json.loads(cli("allreduce", "--system", "dgx-a100", "--ranks", 8, "--bytes", "8B", "--ideal", "--json").output)
    assert ideal["mode"] == "ideal" and ideal["time_s"] < 1e-9


@pytest.mark.parametrize("args,message", [
    (("allreduce", "--system", "dgx-a100", "--ranks", 8), "--bytes B or --sweep"),
    (("allreduce", "--system", "dgx-a100", "--ranks", 8, "--bytes", "1MiB", "--sweep", "8B:1MiB"), "one of them"),
    (("allreduce", "--system", "dgx-a100", "--ranks", 8, "--sweep", "1MiB:8B"), "MIN <= MAX"),
    (("allreduce", "--system", "dgx-a100", "--ranks", 8, "--sweep", "8B"), "MIN:MAX"),
    (("allreduce", "--system", "dgx-a100", "--ranks", 8, "--bytes", "1MiB", "--stack", "nope"), "unknown stack"),
])
def test_cli_errors(args, message):
    r = cli(*args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_rows_run_under_their_stack():
    import pandas as pd

    from accelsim.correlate.schema import COLUMNS

    base = {"kind": "allreduce", "system": "dgx-a100", "bytes": 8, "ranks": 8, "measured_time_s": 3e-5}
    df = pd.DataFrame([{c: {**base, "id": "a"}.get(c) for c in COLUMNS},
                       {c: {**base, "id": "b", "stack": "rocm-native"}.get(c) for c in COLUMNS}])
    real = correlate(df).per_row.set_index("id")["predicted_time_s"]
    ideal = correlate(df, mode="ideal").per_row.set_index("id")["predicted_time_s"]
    assert ideal["a"] == ideal["b"] < 1e-9
    nccl, rccl = load_stack("cuda-eager").collectives, load_stack("rocm-native").collectives
    s = load_system("dgx-a100")
    assert real["a"] == pytest.approx(collective_cost(s, "allreduce", 8, 8, library=nccl).time_s)
    # rocm-native issues from the host: one process per GPU (the default) pays its enqueue once
    host = load_stack("rocm-native").runtime.collective_launch_s
    assert real["b"] == pytest.approx(collective_cost(s, "allreduce", 8, 8, library=rccl).time_s + host)


def test_an_in_switch_reduction_pays_its_own_step_latency():
    """dgx-h100 (NVSwitch with NVLink SHARP, 18 x 25 GB/s = 450 GB/s per GPU and direction): an
    in-switch all-reduce is one step, T = call + step + n / (B f_switch); its step is the
    library's in_switch_step_latency_s where set (NVLS: the switch's multicast round trips),
    the bulk protocol's otherwise. A ring keeps the protocols' steps."""
    s = load_system("dgx-h100")
    B, n = 450e9, 256 * MiB
    base = lib(algorithms=("in_switch", "ring")).model_copy(update={"in_switch_bandwidth_fraction": 0.9})
    r = collective_cost(s, "allreduce", n, 8, library=base)
    assert r.algorithm == "in_switch"
    assert r.time_s == pytest.approx(10e-6 + 5e-6 + n / (B * 0.9), rel=1e-9)      # Simple's 5 us step
    own = base.model_copy(update={"in_switch_step_latency_s": 30e-6})
    assert collective_cost(s, "allreduce", n, 8, library=own).time_s == pytest.approx(
        10e-6 + 30e-6 + n / (B * 0.9), rel=1e-9)
    ring = collective_cost(s, "allreduce", n, 8, algorithm="ring", library=own)
    assert ring.time_s == pytest.approx(10e-6 + 14 * (5e-6 + n / (8 * B * 0.8)), rel=1e-9)


def test_the_prior_fit_recovers_a_known_library():
    """Rows made from NCCL's protocols with values set by hand (call 20 us, LL step 2 us, LL128
    step 30 us so it never wins, Simple step 6 us, 75 % of the link) over 8 B .. 8 GiB on
    dgx-a100, plus the runtime's per-call host cost (as a cuda-native prediction adds it), are
    fitted back to those values."""
    nccl = load_stack("cuda-native").collectives
    host = load_stack("cuda-native").runtime.collective_launch_s
    steps = {"LL": 2e-6, "LL128": 30e-6, "Simple": 6e-6}
    true = nccl.model_copy(update={"call_latency_s": 20e-6, "bandwidth_fraction": 0.75, "protocols": tuple(
        p.model_copy(update={"step_latency_s": steps[p.name]}) for p in nccl.protocols)})
    s = load_system("dgx-a100")
    rows = [MeasurementRow(id=f"r{i}", kind="allreduce", system="dgx-a100", bytes=n, ranks=8, stack="cuda-native",
                           source=f"src{i % 2}",
                           measured_time_s=collective_cost(s, "allreduce", n, 8, library=true).time_s + host)
            for i, n in enumerate(8 * 4**k for k in range(16))]  # 8 B .. 8 GiB, as nccl-tests -e 8G runs
    fit = fit_library(rows, "cuda-native", holdout=False)
    assert fit.mape < 0.02
    assert fit.values["call_latency_s"] + 14 * fit.values["protocols.LL.step_latency_s"] == pytest.approx(48e-6, rel=0.02)
    assert "protocols.LL.base_latency_s" not in fit.values  # one constant with the call's latency: not fitted
    fitted = load_stack("cuda-native").collectives.model_copy(update={  # what the rows determine:
        "call_latency_s": fit.values["call_latency_s"], "bandwidth_fraction": fit.values["bandwidth_fraction"],
        "protocols": tuple(p.model_copy(update={a: fit.values.get(f"protocols.{p.name}.{a}", getattr(p, a))
                                                for a in ("step_latency_s", "base_latency_s")}) for p in nccl.protocols)})
    big = collective_cost(s, "allreduce", 4 * GiB, 8, library=fitted).busbw_Bps   # the bandwidth plateau
    assert big == pytest.approx(300e9 * 0.75, rel=0.02)                  # ring busbw = B x fraction
    assert "in_switch_bandwidth_fraction" not in fit.determined            # no switch reduction on A100
    assert math.isfinite(fit.bias) and fit.bias == pytest.approx(1.0, abs=0.02)


def test_one_field_is_fitted_and_the_others_kept():
    """All-to-all rows made with a known per-operation host cost (0.5 us), timed as nccl-tests
    times them with one thread driving eight GPUs (a loop: the larger of device and 8 x host), are
    fitted back with ``only``; every other field keeps the file's value."""
    from accelsim.correlate.predict import harness_time
    from accelsim.cost.collectives import p2p_host_s

    st = load_stack("cuda-native")
    true = st.collectives.model_copy(update={"p2p_op_host_s": 0.5e-6})
    s = load_system("dgx-a100")
    rows = []
    for i, n in enumerate(8 * 4**k for k in range(12)):
        t = collective_cost(s, "alltoall", n, 8, library=true).time_s
        p2p = p2p_host_s("alltoall", 8, true)
        rows.append(MeasurementRow(id=f"a{i}", kind="alltoall", system="dgx-a100", bytes=n, ranks=8, stack="cuda-native",
                                   gpus_per_process=8, timing="loop", source=f"s{i % 2}",
                                   measured_time_s=harness_time(t - p2p, 8 * (st.runtime.collective_launch_s + p2p),
                                                                "loop")))
    fit = fit_library(rows, "cuda-native", holdout=False, only=("p2p_op_host_s",))
    assert fit.values["p2p_op_host_s"] == pytest.approx(0.5e-6, rel=0.02)
    assert fit.determined == ["p2p_op_host_s"]
    assert fit.values["call_latency_s"] == st.collectives.call_latency_s
    assert fit.values["protocols.Simple.step_latency_s"] == st.collectives.bulk.step_latency_s
    with pytest.raises(MeasurementError, match="'p2p_op_host' is not a fitted field"):
        fit_library(rows, "cuda-native", holdout=False, only=("p2p_op_host",))


def test_a_program_stack_pays_its_call_cost_once_per_collective_and_it_is_fitted_back(tmp_path):
    """A stack that runs whole executables (here XLA over NCCL, written for the test): a
    one-collective row costs the NCCL time plus one call. Rows made with a 20 us call cost (set
    by hand) are fitted back to it."""
    from accelsim.correlate.library_fit import fit_program_call

    path = tmp_path / "xla-exec.yaml"
    path.write_text("name: xla-exec\nbase: cuda-native\nruntime: {name: XLA executables, dispatch: program, "
                    "kernel_launch_s: 5 us}\n")
    xla = load_stack(path)
    assert xla.runtime.dispatch == "program" and xla.collectives == load_stack("cuda-native").collectives
    s = load_system("dgx-h100")
    rows = [MeasurementRow(id=f"x{i}", kind="allgather", system="dgx-h100", bytes=n, ranks=8, stack=str(path),
                           source="s", measured_time_s=collective_cost(s, "allgather", n, 8,
                                                                       library=xla.collectives).time_s + 20e-6)
            for i, n in enumerate(2**k for k in range(10, 30, 2))]
    c, before, after = fit_program_call(rows, str(path))
    assert c == pytest.approx(20e-6, rel=1e-3) and after < 1e-3 < before
    import pandas as pd

    from accelsim.correlate.schema import COLUMNS

    df = pd.DataFrame([{col: getattr(rows[0], col) for col in COLUMNS}])
    got = correlate(df).per_row["predicted_time_s"].iloc[0]
    assert got == pytest.approx(rows[0].measured_time_s - 20e-6 + xla.runtime.kernel_launch_s, rel=1e-9)


def test_correlate_stack_applies_to_rows_that_name_none():
    import pandas as pd

    from accelsim.correlate.schema import COLUMNS
    from accelsim.errors import ConfigError

    rows = [{"id": "a", "kind": "copy", "system": "h100-sxm-80gb", "elements": 1024, "dtype": "fp32",
             "measured_time_s": 5e-6},
            {"id": "b", "kind": "copy", "system": "h100-sxm-80gb", "elements": 1024, "dtype": "fp32",
             "stack": "cuda-graphs", "measured_time_s": 5e-6}]
    df = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows])
    dflt = correlate(df).per_row.set_index("id")["predicted_time_s"]
    eager = correlate(df, stack="cuda-eager").per_row.set_index("id")["predicted_time_s"]
    assert dflt["a"] == dflt["b"]                                  # h100's default is cuda-graphs
    gap = load_stack("cuda-eager").runtime.kernel_launch_s - load_stack("cuda-graphs").runtime.kernel_launch_s
    assert eager["a"] - eager["b"] == pytest.approx(gap, rel=1e-6)  # only the row without a stack moves
    with pytest.raises(ConfigError, match="unknown stack"):
        correlate(df, stack="cuda-eagre")
    r = CliRunner().invoke(main, ["correlate", "/dev/null", "--ideal", "--stack", "neuron"])
    assert r.exit_code == 2 and "exclude" in r.output


def test_cli_event_collective_runs_the_library():
    """--fidelity event in realistic mode runs the stack's library: the same latency plateau as
    the analytical tier (LL ring: call latency + 14 LL steps on 8 ranks), far above the ideal bound."""
    ana = json.loads(cli("allreduce", "--system", "dgx-a100", "--ranks", 8, "--bytes", "8B", "--json").output)
    ev = json.loads(cli("allreduce", "--system", "dgx-a100", "--ranks", 8, "--bytes", "8B", "--fidelity", "event",
                        "--json").output)
    assert ev["time_s"] == pytest.approx(ana["time_s"], rel=0.02) and ev["time_s"] > 10e-6


def test_graph_replay_drops_the_host_cost_of_a_collective():
    """A collective under cuda-native pays the runtime's per-call host enqueue on top of the
    library; under CUDA graphs (replay) it does not: the two differ by exactly that cost."""
    from accelsim.correlate.predict import Predictor
    from accelsim.correlate.schema import rows_of, validate_frame
    from accelsim.stack.presets import load_stack

    import pandas as pd

    host = load_stack("cuda-native").runtime.collective_launch_s
    assert host > 0 and load_stack("cuda-graphs").runtime.collective_launch_s == 0
    assert load_stack("cuda-eager").runtime.collective_launch_s == host  # inherited: eager enqueues too
    rows = rows_of(validate_frame(pd.DataFrame([
        {"id": s, "kind": "allreduce", "system": "dgx-h100", "chips": 8, "ranks": 8, "bytes": 8.0, "stack": s,
         "measured_time_s": 1e-5} for s in ("cuda-native", "cuda-graphs")])))
    pr = Predictor()
    native, graphs = (pr.predict(r).time_s for r in rows)
    assert native - graphs == pytest.approx(host, rel=1e-9)


def test_new_stack_blocks_are_checked_with_file_and_field(tmp_path):
    base = ("runtime: {name: r}\ncollectives:\n  name: c\n  call_latency_s: 1 us\n  bandwidth_fraction: 0.5\n"
            "  protocols: [{name: S, bandwidth_fraction: 1, step_latency_s: 1 us}]\n")
    eng = tmp_path / "eng.yaml"
    eng.write_text("name: eng\n" + base + "serving: {name: e, request_overhead_s: -1 ms}\n")
    with pytest.raises(ConfigError, match=r"eng\.yaml.*serving\.request_overhead_s"):
        load_stack(eng)
    att = tmp_path / "att.yaml"
    att.write_text("name: att\n" + base + "attention: {name: a, efficiency: {h100-sxm5-80gb: 1.5}}\n")
    with pytest.raises(ConfigError, match=r"att\.yaml.*attention\.efficiency"):
        load_stack(att)
    fw = tmp_path / "fw.yaml"
    fw.write_text("name: fw\n" + base + "training: {name: f, rmsnorm: unfused}\n")
    with pytest.raises(ConfigError, match=r"fw\.yaml.*training\.rmsnorm"):
        load_stack(fw)


def test_a_declared_program_cost_is_not_refitted():
    """``accelsim priors`` fits the per-call cost of a program stack from its collective rows
    (xla-gpu), but not one its file states by definition (neuron-device: device time, no
    program execution in it), which would otherwise be overwritten with a 'fitted' source."""
    from accelsim.correlate.library_fit import program_stacks_with_rows

    rows = [MeasurementRow(id=f"{s}{i}", kind="allgather", system=sys_, bytes=4096.0, ranks=ranks, dtype="fp32",
                           stack=s, measured_time_s=1e-5)
            for i, (s, sys_, ranks) in enumerate([("xla-gpu", "dgx-h100", 8), ("neuron-device", "trn1-32xl", 16)])]
    assert set(program_stacks_with_rows(rows)) == {"xla-gpu"}


@pytest.mark.parametrize("args,message", [
    (("--no-collectives", "--field", "p2p_op_host_s"), "needs --collectives"),
    (("--no-hardware", "--no-holdout", "--stack", "cuda-native", "--field", "bogus"), "'bogus' is not a fitted field"),
])
def test_cli_priors_field_errors(args, message):
    r = CliRunner().invoke(main, ["priors", *args])
    assert r.exit_code != 0 and message in r.output and "Traceback" not in r.output


def test_a_rewritten_stack_file_is_read_again_at_once(tmp_path):
    """A user's stack file rewritten in place (same size, within one tick of the file system's
    clock, as a program writing variants to one path does) is read again, not served from the
    cache; the fuzz suite found load_stack handing back the first file's stack."""
    from accelsim.stack.presets import load_stack

    f = tmp_path / "mine.yaml"
    for bucket in (128, 256, 512):  # the same number of bytes each time
        f.write_text(f"name: mine\nbase: neuron\nserving: {{name: x, decode_bucket_tokens: {bucket}}}\n")
        assert load_stack(f).serving.decode_bucket_tokens == bucket
        assert load_stack(str(f)).serving.decode_bucket_tokens == bucket


def test_a_resolved_stack_name_is_kept_until_its_file_changes(tmp_path, monkeypatch):
    """``resolve`` keeps a shipped stack's answer per name, and loads it again once the file (or
    the stacks' folder) changes, as soon as ``load_stack`` would see it: an edited stack is never
    served stale past the file-time check."""
    import os
    import shutil

    from accelsim import configio
    from accelsim.stack import presets

    folder = tmp_path / "stacks"
    shutil.copytree(presets.stack_dir(), folder)
    monkeypatch.setattr(presets, "stack_dir", lambda: folder)
    monkeypatch.setattr(presets, "kernels_dir", lambda: folder / "kernels")
    for cache in ("_RESOLVED", "_CACHE", "_PLATFORMS"):  # what earlier tests kept of the shipped folder
        monkeypatch.setattr(presets, cache, {})
    first = resolve(None, "cuda-native")
    assert resolve(None, "cuda-native") is first  # kept: no second load
    path = folder / "cuda-native.yaml"
    path.write_text(path.read_text().replace("collectives by NCCL", "collectives by NCCL (edited)"))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert resolve(None, "cuda-native") is first  # within the once-a-second time check, as load_stack
    import time

    later = time.monotonic() + 2 * configio.RECHECK_S
    monkeypatch.setattr(time, "monotonic", lambda: later)  # the second has passed
    again = resolve(None, "cuda-native")
    assert again is not first and "(edited)" in again.description
    user = tmp_path / "cuda-mine.yaml"  # a CUDA stack by its name, as platform_of reads it
    user.write_text(path.read_text())
    assert "(edited)" in resolve(str(user), "cuda-native").description
    user.write_text(path.read_text().replace("(edited)", "(mine)"))  # rewritten within the same second
    assert "(mine)" in resolve(str(user), "cuda-native").description  # a user's file: checked on every call
    assert not any(str(user) in k for k in presets._RESOLVED)
