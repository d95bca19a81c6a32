"""KAP Monitor's benchmarks: programs that run the real system on this machine and measure it.

`make bench` (or `python -m bench`) runs them all and prints a table with the machine's line; `--quick`
is a short version; `python -m bench NAME...` runs some. Results: bench/results/latest.json and a dated
copy. Each benchmark is a module here, with its method in its docstring:

1. latency    device byte to pixel (bedside page DOM), 1 and 20 rooms       bench.latency
2. baseline   the same against a plain polling Dash page, and bytes          bench.baseline, baseline_app
3. ingest     codec + event log on one core; MQTT to stored                   bench.ingest, publisher
4. capacity   rooms within half the machine with p95 latency < 100 ms       bench.capacity
5. bytes      bytes to the browser per bedside page (pleth) and home page   bench.page_bytes
6. replay     not built yet                                                  bench.replay
7. memory     resident memory over a long session at 60x speed              bench.memory

Shared parts: bench.harness (machine, statistics, processes), bench.browser (Chromium, DOM stamps, DevTools
byte counts), bench.devices (bench-written Masimo rooms), bench.relay (wire byte count), bench.report.
"""
