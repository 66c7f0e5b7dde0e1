"""Energy model: joules of one evaluated step, from the op table and an energy table.

Energy of a step (all chips)::

    E = chips x sum over ops of [ MACs x mac_pJ[compute type]          (tensor engine)
                                + vector ops x vector_op_pJ            (vector / scalar work,
                                                                        dequantization included)
                                + SRAM bytes x sram_pJ_per_byte        (core SRAM traffic)
                                + HBM bytes x (hbm_pJ_per_byte + shared_sram_pJ_per_byte)
                                + link bytes x link_pJ_per_byte ]
        + static_W x latency x chips

Per op (one chip's share, as in ``Results.ops``):

- **MACs** = FLOPs / 2 of GEMMs and fused attention, priced at the type the GEMM runs in on this
  chip (``sim.costs.compute_dtype``: the wider operand's element type, upcast where the engine
  lacks it). An N:M-sparse GEMM on a chip that accelerates the pattern executes MACs / speed-up.
- **Vector ops** = the op's elementwise ops + transcendentals (``Op.vector_ops`` /
  ``transcendentals``) plus, for a GEMM with operands narrower than its compute type, the
  dequantization ops of the mapping (``sim.costs.dequant_ops``).
- **Core SRAM bytes** (an approximation, a lower bound on real traffic): every operand and
  result byte of the op passes through the core scratchpad once in and once out, and every
  HBM byte beyond the compulsory ones (re-fetches of the tiling) does too:
  ``2 x max(Op.bytes(), hbm_bytes)``. Re-reads of a resident tile from SRAM by the array are not
  counted (they depend on the dataflow's register reuse).
- **Shared SRAM** (GPU L2, TPU CMEM): every HBM byte passes through it once.
- **HBM** and **link** bytes are the cost model's own (``hbm_bytes``, ``link_bytes``).

Defaults (``default_energy``): when a chip's ``energy:`` table is all zero, the table below is
used; any non-zero field of the chip's own table (and each dtype it lists in ``mac_pJ``)
overrides the default. Logic and SRAM figures are Horowitz's 45 nm numbers scaled to the chip's
process node; HBM and link figures are I/O energies and are not scaled. These are documented
model defaults for *relative* comparisons, not calibrated to any product.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..arch.spec import Energy, SystemSpec
from ..memo import IdentityCache

# ----------------------------------------------------------------------------- the constants
HOROWITZ_2014 = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
                 "ISSCC 2014, pp. 10-14, Fig. 1.1.9 (45 nm, 0.9 V)")
OCONNOR_2017 = ("M. O'Connor et al., 'Fine-Grained DRAM: Energy-Efficient DRAM for Extreme Bandwidth "
                "Systems', MICRO 2017 (HBM2: 3.9 pJ/bit, array + I/O)")

ENERGY_CONSTANTS: dict[str, dict[str, Any]] = {
    # 45 nm arithmetic, pJ per operation
    "fp32_mult_pJ": {"value": 3.7, "source": HOROWITZ_2014},
    "fp32_add_pJ": {"value": 0.9, "source": HOROWITZ_2014},
    "fp16_mult_pJ": {"value": 1.1, "source": HOROWITZ_2014},
    "fp16_add_pJ": {"value": 0.4, "source": HOROWITZ_2014},
    "int8_mult_pJ": {"value": 0.2, "source": HOROWITZ_2014},
    "int8_add_pJ": {"value": 0.03, "source": HOROWITZ_2014},
    "int32_add_pJ": {"value": 0.1, "source": HOROWITZ_2014},
    # 45 nm SRAM, pJ per 64-bit read, by array capacity
    "sram_64b_read_pJ": {"value": {8 * 1024: 10.0, 32 * 1024: 20.0, 1024 * 1024: 100.0},
                         "source": HOROWITZ_2014},
    # off-chip memory and links (I/O: not scaled with the logic node)
    "hbm_pJ_per_bit": {"value": 3.9, "source": OCONNOR_2017 + "; used for HBM2e / HBM3 / HBM3e too (no vendor "
                       "pJ/bit figure is published; newer generations are lower, so this is conservative)"},
    "link_pJ_per_bit": {"value": 5.0, "source": "order of magnitude of published 56-112 Gb/s long-reach SerDes "
                        "transceivers (ISSCC 2019-2022 report ~4-7 pJ/bit); an estimate, set link_pJ_per_byte"},
    "static_W": {"value": 0.0, "source": "no published leakage / idle figure per chip: 0 unless the preset's "
                 "energy.static_W says otherwise"},
    # process scaling rule
    "reference_node_nm": {"value": 45.0, "source": HOROWITZ_2014},
    "reference_vdd_V": {"value": 0.9, "source": HOROWITZ_2014},
}
"""Every default constant of the energy model, with its source."""

MAC_RULE = """A MAC = one multiply of the operand type + one add into the accumulator (fp32 add for
float types, int32 add for integer types: the usual wide accumulation of tensor engines).
Horowitz gives the fp32, fp16 and int8 multipliers; other multipliers scale with the area of the
significand product, (significand bits)^2: a float with m mantissa bits costs
fp16_mult x ((m + 1) / 11)^2 (bf16: m = 7, fp8 e4m3 / fp6 e2m3: m = 3, fp4 e2m1: m = 1), tf32
(m = 10) costs as fp16, int4 costs int8_mult x (4 / 8)^2."""

PROCESS_RULE = """Logic and SRAM energy scale from 45 nm / 0.9 V as switched capacitance x Vdd^2 with
capacitance proportional to the feature size (first-order Dennard rule, cf. Horowitz 2014 and
Stillmaker & Baas, 'Scaling equations for the accurate prediction of CMOS device performance
from 180 nm to 7 nm', Integration 58, 2017): factor = (node / 45) x (Vdd / 0.9)^2, with the
nominal core Vdd of the node from NODE_VDD."""

NODE_VDD = {45: 0.9, 28: 0.9, 16: 0.8, 12: 0.8, 7: 0.75, 5: 0.7, 4: 0.7, 3: 0.7}
"""Nominal logic Vdd per node, volts (typical foundry core voltages; an assumption of the rule)."""

CHIP_NODE_NM: dict[str, tuple[float, str]] = {
    "a100-sxm4-80gb": (7, "TSMC N7: NVIDIA A100 whitepaper (specs.yaml nv_a100_wp)"),
    "h100-sxm5-80gb": (5, "TSMC 4N (a 5 nm-class node): NVIDIA H100 whitepaper (specs.yaml nv_h100_wp)"),
    "mi300x": (5, "TSMC N5 compute dies (XCD): specs.yaml club386_mi300"),
    "tpu-v4": (7, "7 nm: TPU v4 paper (Jouppi et al., ISCA 2023; specs.yaml tpuv4_paper)"),
    "tpu-v5e": (5, "not published: assumed 5 nm (successor of the 7 nm TPU v4)"),
    "tpu-v5p": (5, "not published: assumed 5 nm"),
    "trainium1": (7, "not published by AWS: assumed 7 nm (third-party reports)"),
    "inferentia2": (7, "not published by AWS: assumed 7 nm, same generation as Trainium1"),
    "trainium2": (5, "not published by AWS (specs.yaml: 'not published'): assumed 5 nm-class"),
}
"""Process node per chip (``ChipSpec.name``, else its ``die``), nm, with the source or the assumption."""

DEFAULT_NODE_BY_KIND = {"gpu": 5.0, "tpu": 5.0, "npu": 7.0}
"""Node assumed for a chip not in CHIP_NODE_NM, by ``ChipSpec.kind`` (an assumption)."""


def _c(key: str) -> Any:
    return ENERGY_CONSTANTS[key]["value"]


def process_node_nm(system: SystemSpec) -> float:
    chip = system.chip
    hit = CHIP_NODE_NM.get(chip.name) or CHIP_NODE_NM.get(chip.die or "")
    return float(hit[0]) if hit else DEFAULT_NODE_BY_KIND.get(chip.kind, 7.0)


def scale_factor(node_nm: float) -> float:
    """Energy of logic / SRAM at ``node_nm`` relative to 45 nm (``PROCESS_RULE``)."""
    nodes = sorted(NODE_VDD)
    vdd = NODE_VDD[min(nodes, key=lambda n: abs(n - node_nm))]
    return (node_nm / _c("reference_node_nm")) * (vdd / _c("reference_vdd_V")) ** 2


def mac_pJ_45nm() -> dict[str, float]:
    """pJ per MAC at 45 nm per rate dtype (``MAC_RULE``)."""
    f16m, f32a, i32a = _c("fp16_mult_pJ"), _c("fp32_add_pJ"), _c("int32_add_pJ")

    def fmul(m: int) -> float:
        return f16m * ((m + 1) / 11.0) ** 2

    return {"fp32": _c("fp32_mult_pJ") + f32a, "tf32": fmul(10) + f32a, "fp16": fmul(10) + f32a,
            "bf16": fmul(7) + f32a, "fp8": fmul(3) + f32a, "fp6": fmul(3) + f32a, "fp4": fmul(1) + f32a,
            "int8": _c("int8_mult_pJ") + i32a, "int4": _c("int8_mult_pJ") * 0.25 + i32a}


def sram_pJ_per_byte_45nm(capacity_bytes: float) -> float:
    """pJ per byte of a read from an SRAM of ``capacity_bytes`` at 45 nm: log-log interpolation
    of Horowitz's 64-bit reads (8 KB, 32 KB, 1 MB), clamped to that range (larger SRAMs are
    banked: an access costs about a 1 MB array's)."""
    pts = sorted(_c("sram_64b_read_pJ").items())
    cap = min(max(capacity_bytes, pts[0][0]), pts[-1][0])
    for (c0, e0), (c1, e1) in zip(pts, pts[1:]):
        if cap <= c1:
            t = math.log(cap / c0) / math.log(c1 / c0)
            return math.exp(math.log(e0) + t * math.log(e1 / e0)) / 8.0
    return pts[-1][1] / 8.0


def default_energy(system: SystemSpec) -> Energy:
    """The default energy table of ``system``'s chip (``ENERGY_CONSTANTS`` at its node)."""
    chip = system.chip
    s = scale_factor(process_node_nm(system))
    return Energy(
        mac_pJ={k: v * s for k, v in mac_pJ_45nm().items()},
        # a vector op: one 16-bit FP multiply + add per element (register operands)
        vector_op_pJ=(_c("fp16_mult_pJ") + _c("fp16_add_pJ")) * s,
        sram_pJ_per_byte=sram_pJ_per_byte_45nm(chip.core.sram.capacity_bytes) * s,
        shared_sram_pJ_per_byte=(sram_pJ_per_byte_45nm(chip.shared_sram.capacity_bytes) * s
                                 if chip.shared_sram is not None else 0.0),
        hbm_pJ_per_byte=_c("hbm_pJ_per_bit") * 8.0,
        link_pJ_per_byte=_c("link_pJ_per_bit") * 8.0,
        static_W=_c("static_W"),
    )


def energy_table(system: SystemSpec) -> Energy:
    """The chip's energy table: its own non-zero fields over ``default_energy`` (built once
    per system object)."""
    return _TABLES.get((system,), lambda: _energy_table(system))


_TABLES = IdentityCache(32)
_OP_TERMS = IdentityCache(32)


def _energy_table(system: SystemSpec) -> Energy:
    own = system.chip.energy
    base = default_energy(system)
    upd: dict[str, Any] = {"mac_pJ": {**base.mac_pJ, **own.mac_pJ}}
    for f in ("vector_op_pJ", "sram_pJ_per_byte", "shared_sram_pJ_per_byte", "hbm_pJ_per_byte",
              "link_pJ_per_byte", "static_W"):
        v = getattr(own, f)
        if v:
            upd[f] = v
    return base.model_copy(update=upd)


def _mac_price(table: dict[str, float], dtype: str) -> float:
    if dtype in table:
        return table[dtype]
    from ..cost.op_cost import rate_dtype

    d = rate_dtype(dtype)
    return table.get(d, table.get("bf16", 0.0))


def op_energy_terms(ops: list, system: SystemSpec, hbm_bytes, link_bytes,
                    table: Energy | None = None) -> dict[str, np.ndarray]:
    """Per-op energy (J, one chip) by component: mac, vector, sram, hbm, link."""
    return {k: np.array(v, dtype=float) for k, v in
            _terms(ops, system, np.asarray(hbm_bytes, float).tolist(), np.asarray(link_bytes, float).tolist(),
                   table or energy_table(system)).items()}


def _terms(ops: list, system: SystemSpec, hbm_bytes: list[float], link_bytes: list[float],
           e: Energy) -> dict[str, list[float]]:
    """``op_energy_terms`` as lists of floats (a few stored ops: plain floats beat numpy)."""
    out: dict[str, list[float]] = {"mac": [], "vector": [], "sram": [], "hbm": [], "link": []}
    lists = tuple(out.values())
    for row in _rows(*_op_parts(ops, system, e), hbm_bytes, link_bytes):
        for dst, x in zip(lists, row):
            dst.append(x)
    return out


def _rows(parts, prices, hbm_bytes, link_bytes):
    """Per op, its (mac, vector, sram, hbm, link) joules from ``_op_parts``' output and the
    op's HBM and link bytes: the SRAM moves the larger of its compulsory and HBM bytes in and
    out (none for a collective)."""
    p_sram, p_hbm, p_link = prices
    for (m, v, base), h, lb in zip(parts, hbm_bytes, link_bytes):
        yield m, v, (2.0 * max(base, h) * p_sram if base > 0 else 0.0), h * p_hbm, lb * p_link


def _op_parts(ops: list, system: SystemSpec, e: Energy, flops=None, nbytes=None
              ) -> tuple[list[tuple[float, float, float]], tuple[float, float, float]]:
    """Per op (MAC joules, vector joules, compulsory bytes: the SRAM floor; 0 for a collective),
    cached per system and table across calls; with the SRAM, HBM and link joules per byte.
    ``flops`` / ``nbytes``: the ops' ``flops()`` / ``bytes()`` when the caller has them."""
    from ..cost.op_cost import compute_dtype, dequant_ops, gemm_mapping, sparse_factor
    from ..sim.analytical import chip_model
    from ..workload.ops import FlashAttention, MatMul

    cache: dict = _OP_TERMS.get((system, e), dict)  # per system and table, kept across calls
    if len(cache) > 20_000:
        cache.clear()
    p_vec = e.vector_op_pJ * 1e-12
    out = []
    cm = None
    for i, o in enumerate(ops):
        hit = cache.get(o)
        if hit is None:
            cm = cm or chip_model(system)
            fl = o.flops() if flops is None else flops[i]
            m_J = v_ops = 0.0
            if isinstance(o, MatMul):
                comp = compute_dtype(cm, o)
                m_J = mac_joules(e, fl, comp, sparse_factor(cm, o))
                if (o.emulate or o.dtype_a != o.dtype_b) and not cm.fused_dequant:
                    try:
                        f = gemm_mapping(cm, o)
                        v_ops += dequant_ops(cm, o, f["tile_m"], f["tile_n"])
                    except Exception:  # noqa: BLE001 - a GEMM that does not map has no dequant estimate
                        pass
            elif isinstance(o, FlashAttention):
                m_J = mac_joules(e, fl, o.dtype)
            elif o.engine == "tensor":
                m_J = mac_joules(e, fl, getattr(o, "dtype", "bf16"))
            v_ops += o.vector_ops() + o.transcendentals()
            floor = 0.0 if o.kind == "collective" else float(o.bytes() if nbytes is None else nbytes[i])
            hit = cache[o] = (m_J, v_ops * p_vec, floor)
        out.append(hit)
    return out, prices(e)


def prices(e: Energy) -> tuple[float, float, float]:
    """Joules per byte of the SRAM, of HBM (with the chip-shared SRAM it passes) and of links."""
    return (e.sram_pJ_per_byte * 1e-12, (e.hbm_pJ_per_byte + e.shared_sram_pJ_per_byte) * 1e-12,
            e.link_pJ_per_byte * 1e-12)


def mac_joules(e: Energy, flops: float, dtype: str, sparse: float = 1.0) -> float:
    """Joules of a tensor op's multiply-accumulates (``flops`` / 2 at the MAC price of ``dtype``,
    divided by a sparsity speed-up), as ``_op_parts`` prices them."""
    return flops / 2.0 / sparse * _mac_price(e.mac_pJ, dtype) * 1e-12


def energy_summary(terms: dict, latency_s: float, chips: int, tokens: float,
                   static_W: float, repeat=1.0) -> dict[str, Any]:
    """Summary entries (energy_J, energy_per_token_J, energy_breakdown_J) from per-op terms of
    one chip (arrays or lists); ``repeat`` weights each op (e.g. microbatches in a training
    step)."""
    if isinstance(repeat, (int, float)):
        br = {k: float(np.sum(v)) * repeat * chips for k, v in terms.items()}
    else:
        r = np.asarray(repeat, float).tolist()
        br = {k: float(sum(a * b for a, b in zip(np.asarray(v, float).tolist() if not isinstance(v, list) else v, r)))
              * chips for k, v in terms.items()}
    return _summary(br, static_W * latency_s * chips, tokens)


def _summary(dynamic: dict[str, float], static_J: float, tokens: float) -> dict[str, Any]:
    """The summary entries from the dynamic joules by component (all chips) and the static ones."""
    br = {**dynamic, "static": static_J}
    total = float(sum(br.values()))
    return {"energy_J": total, "energy_per_token_J": total / tokens if tokens > 0 else 0.0,
            "energy_breakdown_J": br}


def add_energy(results) -> None:
    """Add energy columns (``energy_J`` per op, one chip) and summary entries to an inference
    ``Results`` (``evaluate``)."""
    s = results.summary
    table = energy_table(results.system)
    if results.slot_columns is None:
        ops, cols = results.graph.ops(), results.ops
        terms = _terms(ops, results.system, np.asarray(cols["hbm_bytes"], float).tolist(),
                       np.asarray(cols["link_bytes"], float).tolist(), table)
        results.add_column("energy_J", np.array([sum(x) for x in zip(*terms.values())], dtype=float))
        tokens = s["tokens_per_s"] * s["latency_s"]
        s.update(energy_summary(terms, s["latency_s"], s["chips"], tokens, table.static_W))
        return
    # per stored op, weighted by the ops each stands for: one pass, the same sums as
    # ``_terms`` + ``energy_summary`` (each a running sum in stored-op order, to the last bit)
    ops, count = results.graph.slots()
    cols = results.slot_columns
    add_slot_energy(results, _op_parts(ops, results.system, table, cols["flops"].tolist(), cols["bytes"].tolist())[0],
                    count, table)


def add_slot_energy(results, parts: list[tuple[float, float, float]], count, table: Energy) -> None:
    """``add_energy`` for results with per-stored-op columns, from each stored op's (MAC
    joules, vector joules, compulsory bytes) (``_op_parts``) and its multiplicity ``count``."""
    s = results.summary
    cols = results.slot_columns
    rows = _rows(parts, prices(table), np.asarray(cols["hbm_bytes"], float).tolist(),
                 np.asarray(cols["link_bytes"], float).tolist())
    rows = list(rows)
    results.add_column("energy_J", np.array([m + v + sr + hb + li for m, v, sr, hb, li in rows], dtype=float))
    s.update(energy_entries(table, joule_sums(rows, count.tolist()), s))


def joule_sums(rows, count) -> tuple[float, float, float, float, float]:
    """One chip's step joules by component (mac, vector, sram, hbm, link) from each stored op's
    (``_rows``, ``row_pricer``) and its multiplicity, summed in stored-op order."""
    tm = tv = ts = th = tl = 0
    for (m, v, sr, hb, li), c in zip(rows, count):
        tm += m * c
        tv += v * c
        ts += sr * c
        th += hb * c
        tl += li * c
    return tm, tv, ts, th, tl


def energy_entries(table: Energy, sums, summary: dict[str, Any]) -> dict[str, Any]:
    """The summary's energy entries from one chip's step joules by component (mac, vector,
    sram, hbm, link: each op's weighted by its multiplicity, summed in stored-op order) and the
    summary's chips, latency and token rate."""
    chips, latency = summary["chips"], summary["latency_s"]
    mac, vector, sram, hbm, link = sums
    dynamic = {"mac": float(mac) * chips, "vector": float(vector) * chips, "sram": float(sram) * chips,
               "hbm": float(hbm) * chips, "link": float(link) * chips}
    return _summary(dynamic, table.static_W * latency * chips, summary["tokens_per_s"] * latency)


_PRICERS = IdentityCache(32)


def row_pricer(e: Energy):
    """A function of an op's energy inputs (flops priced as MACs, their element type, vector
    operations, compulsory bytes), HBM bytes and link bytes (six numbers) -> its (mac, vector, sram, hbm, link)
    joules, as ``_op_parts`` and ``_rows`` price them; one per table."""
    return _PRICERS.get((e,), lambda: _pricer(e))


def price_terms(e: Energy, dtype: str) -> tuple[float, float, float, float, float]:
    """Joules per MAC of ``dtype``, per vector operation and per byte of SRAM, HBM and link, as
    ``row_pricer``'s function prices them (``sim.fast.evaluate_point``)."""
    return (_mac_price(e.mac_pJ, dtype), e.vector_op_pJ * 1e-12, *prices(e))


def _pricer(e: Energy):
    p_vec = e.vector_op_pJ * 1e-12
    p_sram, p_hbm, p_link = prices(e)

    def price(fl: float, dtype: str, v: float, base: float, hbm: float, link: float) -> tuple[float, ...]:
        return ((mac_joules(e, fl, dtype) if fl else 0.0), v * p_vec,
                (2.0 * max(base, hbm) * p_sram if base > 0 else 0.0), hbm * p_hbm, link * p_link)
    return price


def describe_defaults(system: SystemSpec) -> dict[str, Any]:
    """The default table of ``system`` with its node and scale factor, for people."""
    node = process_node_nm(system)
    return {"node_nm": node, "node_source": CHIP_NODE_NM.get(system.chip.name, (None, "default by kind"))[1],
            "scale_vs_45nm": scale_factor(node), "table": energy_table(system).model_dump()}


__all__ = ["ENERGY_CONSTANTS", "CHIP_NODE_NM", "default_energy", "energy_table", "op_energy_terms",
           "energy_summary", "add_energy", "process_node_nm", "scale_factor", "describe_defaults"]
