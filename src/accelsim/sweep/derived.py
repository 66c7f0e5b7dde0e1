"""Derived design costs for sweeps: a first-order die-area and power model.

The spec carries ``die_area_m2`` and ``tdp_W`` where a vendor publishes them, but those numbers
do not move when a sweep changes the array size or the SRAM. This module gives a deliberately
simple, documented component model so that a sweep can trade performance against area and
power:

    area_mm2(chip)  = (1 + area_overhead) x (
                      pe_mm2            x PEs               (num_cores x rows x cols x count)
                    + vector_lane_mm2   x vector lanes      (num_cores x lanes)
                    + sram_mm2_per_MiB  x on-chip SRAM MiB  (per-core SRAM + accumulators + shared SRAM)
                    + hbm_phy_mm2_per_TBps x HBM TB/s       (PHYs and controllers scale with bandwidth)
                    + link_mm2_per_100GBps x link GB/s/100  (SerDes; one direction of one chip's links) )

    power_W(chip)   = (1 + power_overhead) x (
                      mac_pJ x peak MAC/s               (bf16, or the fastest listed dtype)
                    + hbm_pJ_per_byte x HBM B/s         (access + I/O energy at full bandwidth)
                    + link_pJ_per_byte x link B/s
                    + sram_leakage_W_per_MiB x SRAM MiB )

The overhead fractions stand for everything not modelled (control, NoC, DMA, I/O, clocking).
The power is that of every resource at full rate: a TDP-like proxy, not the power of a given
workload. **Anchoring**: when the point's chip has a published ``die_area_m2`` (or
``tdp_W``), the result is that figure scaled by ``model(point) / model(base)``, so the base chip
reproduces its published number and the model only supplies the *relative* change; without
one, the absolute model value is used. The default coefficients are illustrative order-of-
magnitude figures for a 5 nm-class design (a bf16 MAC with its pipeline registers ~500 um^2;
dense SRAM macros with periphery ~0.45 mm^2/MiB; HBM3 ~3.5-4 pJ/bit including the PHY; ~0.5 pJ
per bf16 MAC including operand delivery) and are **not** calibrated to any product; set
``cost_model:`` in the sweep file to your own.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from ..arch.spec import SystemSpec

MiB = 2.0**20


class CostModel(BaseModel):
    """Coefficients of the first-order area / power model (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    area_overhead: float = Field(0.35, ge=0)
    """Uncore area (control, NoC, DMA engines, I/O) as a fraction of the modelled blocks."""
    pe_mm2: float = Field(0.0005, ge=0)
    """One tensor-engine PE (a bf16 MAC with its registers), mm^2."""
    vector_lane_mm2: float = Field(0.005, ge=0)
    """One vector-engine lane, mm^2."""
    sram_mm2_per_MiB: float = Field(0.45, ge=0)
    """On-chip SRAM including periphery, mm^2 per MiB."""
    hbm_phy_mm2_per_TBps: float = Field(12.0, ge=0)
    """HBM PHY and controller area, mm^2 per TB/s of bandwidth."""
    link_mm2_per_100GBps: float = Field(2.0, ge=0)
    """Chip-to-chip SerDes, mm^2 per 100 GB/s (one direction of all of a chip's links)."""
    power_overhead: float = Field(0.25, ge=0)
    """Power not modelled below (control, NoC, I/O, clocking) as a fraction of the modelled terms."""
    mac_pJ: float = Field(0.5, ge=0)
    """Energy per MAC at the peak rate, pJ."""
    hbm_pJ_per_byte: float = Field(30.0, ge=0)
    """HBM access and I/O energy, pJ per byte."""
    link_pJ_per_byte: float = Field(10.0, ge=0)
    """Link energy, pJ per byte."""
    sram_leakage_W_per_MiB: float = Field(0.03, ge=0)
    """SRAM leakage, W per MiB."""
    anchor: bool = True
    """Scale published ``die_area_m2`` / ``tdp_W`` by the model's relative change (else absolute)."""

    def components(self, system: SystemSpec) -> dict[str, float]:
        """The quantities the model uses: PEs, lanes, SRAM MiB, HBM B/s, link B/s, MAC/s."""
        chip = system.chip
        t = chip.core.tensor
        sram = chip.core.sram.capacity_bytes + (chip.core.accumulator.capacity_bytes if chip.core.accumulator else 0.0)
        macs = t.macs_per_cycle.get("bf16") or max(t.macs_per_cycle.values())
        link = system.interconnect.chip_bandwidth_Bps(system.chips_per_node) if system.interconnect else 0.0
        return {
            "pes": float(chip.num_cores * t.rows * t.cols * t.count),
            "lanes": float(chip.num_cores * chip.core.vector.lanes),
            "sram_MiB": (chip.num_cores * sram + (chip.shared_sram.capacity_bytes if chip.shared_sram else 0.0)) / MiB,
            "hbm_Bps": chip.hbm.bandwidth_Bps,
            "link_Bps": link,
            "mac_per_s": macs * chip.num_cores * chip.engine_hz("tensor"),
        }

    def model_area_mm2(self, system: SystemSpec) -> float:
        c = self.components(system)
        blocks = (self.pe_mm2 * c["pes"] + self.vector_lane_mm2 * c["lanes"] + self.sram_mm2_per_MiB * c["sram_MiB"]
                  + self.hbm_phy_mm2_per_TBps * c["hbm_Bps"] / 1e12 + self.link_mm2_per_100GBps * c["link_Bps"] / 1e11)
        return (1.0 + self.area_overhead) * blocks

    def model_power_W(self, system: SystemSpec) -> float:
        c = self.components(system)
        terms = (self.mac_pJ * 1e-12 * c["mac_per_s"] + self.hbm_pJ_per_byte * 1e-12 * c["hbm_Bps"]
                 + self.link_pJ_per_byte * 1e-12 * c["link_Bps"] + self.sram_leakage_W_per_MiB * c["sram_MiB"])
        return (1.0 + self.power_overhead) * terms

    def costs(self, system: SystemSpec, base: SystemSpec) -> dict[str, float]:
        """``area_mm2`` and ``power_W`` of one chip of ``system``, anchored on its published
        figures relative to ``base`` (the sweep's base system) when ``anchor`` is set."""
        area, power = self.model_area_mm2(system), self.model_power_W(system)
        if self.anchor and system.chip.die_area_m2:
            area = system.chip.die_area_m2 * 1e6 * area / self.model_area_mm2(base)
        if self.anchor and system.chip.tdp_W:
            power = system.chip.tdp_W * power / self.model_power_W(base)
        return {"area_mm2": area, "power_W": power}


__all__ = ["CostModel"]
