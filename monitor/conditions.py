"""Technical conditions a device can report, with the words a nurse reads.

Codecs map their protocol's bits and codes onto these identifiers so the rest of the system (status
topic, dashboard, and later the alarm engine) speaks one vocabulary whatever the device.
"""

from __future__ import annotations

from typing import Final

#: identifier -> text shown on screen
CONDITION_TEXT: Final[dict[str, str]] = {
    # oximeter sensor and signal
    "no_sensor": "No sensor",
    "sensor_off": "Sensor off patient",
    "no_cable": "No cable",
    "sensor_defective": "Defective sensor",
    "sensor_unrecognized": "Unrecognised sensor",
    "sensor_incompatible": "Incompatible sensor",
    "low_perfusion": "Low perfusion",
    "pulse_search": "Pulse search",
    "interference": "Interference",
    "ambient_light": "Too much ambient light",
    "low_signal_iq": "Low signal quality",
    "low_battery": "Device battery low",
    # alarms the device itself raised (its own limits)
    "device_spo2_high": "Device alarm: SpO2 high",
    "device_spo2_low": "Device alarm: SpO2 low",
    "device_pulse_high": "Device alarm: pulse high",
    "device_pulse_low": "Device alarm: pulse low",
    "device_alarm_active": "Device alarm active",
    "device_alarm_silenced": "Device alarm silenced",
    "device_spco_high": "Device alarm: SpCO high",
    "device_spco_low": "Device alarm: SpCO low",
    "device_spmet_high": "Device alarm: SpMet high",
    "device_spmet_low": "Device alarm: SpMet low",
    "device_desat_index": "Device alarm: desaturation index",
    "device_pi_delta": "Device alarm: PI delta",
    # oximeter signal (Nonin)
    "artifact": "Motion artifact",
    "out_of_track": "Oximeter out of track",
    "sensor_alarm": "Oximeter sensor alarm",
    "perfusion_marginal": "Marginal perfusion",
    # NIBP (SunTech return codes and module replies)
    "nibp_weak_signal": "BP: weak signal",
    "nibp_erratic_signal": "BP: erratic signal",
    "nibp_out_of_range": "BP: out of range",
    "nibp_measurement_timeout": "BP: measurement timeout",
    "nibp_pneumatic_blockage": "BP: pneumatic blockage",
    "nibp_aborted": "BP: measurement aborted",
    "nibp_loose_cuff": "BP: loose cuff or leak",
    "nibp_safety_timeout": "BP: safety timeout",
    "nibp_over_pressure": "BP: cuff over-pressure",
    "nibp_hardware": "BP: hardware or power fault",
    "nibp_auto_zero": "BP: auto-zero failed",
    "nibp_transducer_range": "BP: transducer out of range",
    "nibp_eeprom": "BP: module memory fault",
    "nibp_module_error": "BP: module error",
    "nibp_no_response": "BP: module not responding",
    "nibp_busy": "BP: module busy",
    # infusion pump
    "pump_occlusion": "Pump: occlusion",
    "pump_air_in_line": "Pump: air in line",
    "pump_end_of_infusion": "Pump: end of infusion",
    "pump_near_end": "Pump: near end of infusion",
    "pump_door_open": "Pump: door open",
    "pump_low_battery": "Pump: battery low",
    "pump_alarm": "Pump: alarm",
    "pump_no_response": "Pump: not responding",
    # link
    "link_down": "No connection to device",
    "no_data": "No data from device",
}

#: conditions under which the device's numbers must not be shown as current readings
SENSOR_PROBLEMS: Final[frozenset[str]] = frozenset(
    {"no_sensor", "sensor_off", "no_cable", "sensor_defective", "sensor_unrecognized", "sensor_incompatible"}
)


def condition_text(code: str) -> str:
    """The on-screen words for a condition; unknown codes are shown as they are rather than hidden."""
    return CONDITION_TEXT.get(code, code.replace("_", " ").capitalize())
