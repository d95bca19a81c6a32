"""6. Replay: how fast a recorded session replays through the page. Not built yet.

The replay page is a later issue. Until it exists there is nothing honest to time, so this benchmark
reports "not built yet" and no figure.
"""

from __future__ import annotations

from typing import Any


def run() -> dict[str, Any]:
    return {"status": "not built yet", "why": "the replay page does not exist yet (a later issue)"}
