"""The baseline: a deliberately plain Dash page that polls, the way the old dash-sample-apps streaming demos
did (the counter-example in shared/STYLE.md).

Flask backend (Dash's default), one `dcc.Interval` firing every second, and one callback that returns the
room's current SpO2 and the whole 30-minute trend figure, rebuilt from scratch on every tick. It is fed by
the same MQTT stream as the product (its own subscription to `kap/+/+/+/obs`, decoded with the product's
`monitor.wire`), and seeds its 30 minutes of history from the same event log at start, so its figure is as
full as the product's trend.

    python -m bench.baseline_app --broker 127.0.0.1:1883 --db kap.sqlite --port 8060

The page for a room is `/room/<room>`; the SpO2 is in `#spo2-value`, as on the product's bedside page.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections import deque

import plotly.graph_objects as go
from dash import Dash, Input, Output, dcc, html

from monitor import mdc, wire
from monitor.bus import MqttLink
from monitor.store import EventLog
from monitor.views import chart_time

WINDOW_S = 30 * 60

# module-level state, as those demos kept it: room -> deque of (ts, code, value)
HISTORY: dict[str, deque[tuple[float, int, float | None]]] = {}
LOCK = threading.Lock()


def on_message(topic: str, payload: bytes, retained: bool) -> None:
    try:
        parsed = wire.parse_topic(topic)
        obs = wire.decode_observation(parsed, payload)
    except wire.WireError:
        return
    if obs.code not in (mdc.SPO2.code, mdc.PULSE_RATE.code):
        return
    with LOCK:
        HISTORY.setdefault(obs.room, deque()).append((obs.ts, obs.code, obs.value if obs.valid else None))


def seed(db: str) -> None:
    store = EventLog(db)
    since = time.time() - WINDOW_S
    for rec in store.recordings():
        points = HISTORY.setdefault(rec.room, deque())
        for obs in store.observations(
            rec.site, rec.room, since=since, codes=(mdc.SPO2.code, mdc.PULSE_RATE.code)
        ):
            points.append((obs.ts, obs.code, obs.value if obs.valid else None))
    store.close()


def figure(room: str) -> go.Figure:
    cutoff = time.time() - WINDOW_S
    with LOCK:
        points = HISTORY.get(room, deque())
        while points and points[0][0] < cutoff:
            points.popleft()
        rows = list(points)
    spo2 = [(chart_time(ts), v) for ts, code, v in rows if code == mdc.SPO2.code]
    pulse = [(chart_time(ts), v) for ts, code, v in rows if code == mdc.PULSE_RATE.code]
    fig = go.Figure()
    fig.add_scatter(x=[x for x, _ in spo2], y=[y for _, y in spo2], name="SpO2 %", mode="lines")
    fig.add_scatter(
        x=[x for x, _ in pulse], y=[y for _, y in pulse], name="Pulse /min", mode="lines", yaxis="y2"
    )
    fig.update_layout(
        template="plotly_dark",
        height=320,
        xaxis={"type": "date"},
        yaxis={"title": "SpO2 %", "range": [70, 101]},
        yaxis2={"title": "Pulse /min", "range": [30, 180], "overlaying": "y", "side": "right"},
    )
    return fig


def latest_spo2(room: str) -> str:
    with LOCK:
        for _ts, code, value in reversed(HISTORY.get(room, deque())):
            if code == mdc.SPO2.code:
                return "--" if value is None else f"{value:.0f}"
    return "--"


def create_app() -> Dash:
    app = Dash(__name__, title="Baseline", update_title=None, suppress_callback_exceptions=True)
    app.layout = html.Div(
        [
            dcc.Location(id="url"),
            html.H2(id="room-title"),
            html.Div("--", id="spo2-value", style={"fontSize": "120px"}),
            dcc.Graph(id="trend"),
            dcc.Interval(id="tick", interval=1000),
        ]
    )

    @app.callback(
        Output("room-title", "children"),
        Output("spo2-value", "children"),
        Output("trend", "figure"),
        Input("tick", "n_intervals"),
        Input("url", "pathname"),
    )
    def refresh(_n: int | None, pathname: str | None):  # type: ignore[no-untyped-def]
        room = (pathname or "/").rstrip("/").rsplit("/", 1)[-1]
        return f"Room {room}", latest_spo2(room), figure(room)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    seed(args.db)
    MqttLink(
        args.broker, f"kap-bench-baseline-{args.port}", subscriptions=["kap/+/+/+/obs"], on_message=on_message
    ).start()
    app = create_app()
    print(f"baseline: http://127.0.0.1:{args.port}/", flush=True)
    app.run(host="127.0.0.1", port=args.port, debug=False, threaded=True)


if __name__ == "__main__":
    main()
