"""Simulated bedside devices for development, demos and tests.

`physiology` scripts a patient whose numbers move like a patient's; `masimo` turns it into a Masimo
oximeter's exact serial bytes; `pty_link` and `tcp_link` carry those bytes to the gateway the way a serial
cable or a serial-to-Ethernet converter would; `run` is the `kap-monitor simulate` command.
"""
