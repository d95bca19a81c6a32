"""IEEE 11073-10101 (MDC) nomenclature codes and their UCUM units: the one place for them.

Every observation carries an MDC code so that any system speaking IEEE 11073 / IHE PCD can read our data;
the UCUM unit string travels beside it for humans and for tools that do not know MDC.
Source: ../shared/reference/device-protocols.md section 4 (partition 2 measurements).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    """One kind of measurement: its MDC code, reference id, UCUM unit and a short label for screens."""

    code: int
    ref_id: str
    unit: str
    label: str


SPO2 = Metric(150456, "MDC_PULS_OXIM_SAT_O2", "%", "SpO2")
PULSE_RATE = Metric(149530, "MDC_PULS_OXIM_PULS_RATE", "/min", "Pulse")
PERFUSION_INDEX = Metric(150448, "MDC_PULS_OXIM_PERF_REL", "%", "PI")
PLETH = Metric(150452, "MDC_PULS_OXIM_PLETH", "1", "Pleth")  # code [unverified]
NIBP_CUFF = Metric(150036, "MDC_PRESS_CUFF", "mm[Hg]", "Cuff")  # code [unverified]
PUMP_PRESSURE = Metric(157876, "MDC_PRESS_FLUID_PUMP_LINE", "mm[Hg]", "Line pressure")  # code [unverified]
NIBP_SYS = Metric(150021, "MDC_PRESS_BLD_NONINV_SYS", "mm[Hg]", "Systolic")
NIBP_DIA = Metric(150022, "MDC_PRESS_BLD_NONINV_DIA", "mm[Hg]", "Diastolic")
NIBP_MEAN = Metric(150023, "MDC_PRESS_BLD_NONINV_MEAN", "mm[Hg]", "Mean")
NIBP_PULSE_RATE = Metric(149546, "MDC_PULS_RATE_NON_INV", "/min", "NIBP pulse")
HEART_RATE = Metric(147842, "MDC_ECG_HEART_RATE", "/min", "HR")
RESP_RATE = Metric(151562, "MDC_RESP_RATE", "/min", "RR")
INFUSION_RATE = Metric(157784, "MDC_FLOW_FLUID_PUMP", "mL/h", "Rate")
VOLUME_INFUSED = Metric(157864, "MDC_VOL_FLUID_DELIV", "mL", "Infused")
VTBI_REMAINING = Metric(157872, "MDC_VOL_FLUID_TBI_REMAIN", "mL", "VTBI")

ALL_METRICS: tuple[Metric, ...] = (
    SPO2,
    PULSE_RATE,
    PERFUSION_INDEX,
    PLETH,
    NIBP_CUFF,
    PUMP_PRESSURE,
    NIBP_SYS,
    NIBP_DIA,
    NIBP_MEAN,
    NIBP_PULSE_RATE,
    HEART_RATE,
    RESP_RATE,
    INFUSION_RATE,
    VOLUME_INFUSED,
    VTBI_REMAINING,
)
BY_CODE: dict[int, Metric] = {m.code: m for m in ALL_METRICS}
