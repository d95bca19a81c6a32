"""Publishes N observations at QoS 1 as fast as the product's MQTT client allows (for bench.ingest).

    python -m bench.publisher --broker HOST:PORT --count N --go DIR

Encodes every payload first (20 rooms' oximeters), connects, prints `ready`, waits for a file `DIR/go`,
then publishes, printing `started <time.time()>` and, once the broker acknowledged every message,
`published N <time.time()>`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from monitor import mdc, wire
from monitor.bus import MqttLink
from monitor.model import Observation

ROOMS = 20


def payloads(count: int) -> list[tuple[str, bytes]]:
    now = time.time()
    seq = int(now * 1_000_000)
    out = []
    for i in range(count):
        room = f"room{i % ROOMS + 1}"
        metric = (mdc.SPO2, mdc.PULSE_RATE, mdc.PERFUSION_INDEX)[(i // ROOMS) % 3]
        obs = Observation(
            "clinic", room, "oximeter", seq + i, now, metric.code, 90.0 + i % 10, metric.unit, True
        )
        out.append((wire.obs_topic("clinic", room, "oximeter"), wire.encode_observation(obs)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--go", default=".", help="directory in which a file `go` starts the publishing")
    args = parser.parse_args()
    messages = payloads(args.count)
    link = MqttLink(args.broker, "kap-bench-publisher")
    link.start()
    if not link.wait_connected(10):
        raise SystemExit("publisher: broker not reachable")
    go = Path(args.go) / "go"
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.001)
    print(f"started {time.time():.6f}", flush=True)
    infos = [link.publish(topic, payload) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(timeout=60)
    print(f"published {len(infos)} {time.time():.6f}", flush=True)
    link.stop()


if __name__ == "__main__":
    main()
