"""The frame every page sits in: dark theme, header with the safety line, and the routed page area."""

from __future__ import annotations

import dash_mantine_components as dmc
from dash import dcc, html


def app_shell() -> dmc.MantineProvider:
    return dmc.MantineProvider(
        forceColorScheme="dark",
        children=[
            dcc.Location(id="url"),
            # set by the router once a page is mounted: tells the page's live stream what to push
            dcc.Store(id="page-live", data=None),
            html.Header(
                className="kap-header",
                children=[
                    html.A("KAP Monitor", href="/", className="kap-brand"),
                    html.A("Replay", href="/replay", className="kap-nav", id="nav-replay"),
                    html.A("What-if", href="/whatif", className="kap-nav", id="nav-whatif"),
                    html.Span("Decision support, not a certified medical device", className="kap-safety"),
                ],
            ),
            html.Main(id="page", className="kap-page"),
        ],
    )


def not_found(path: str) -> html.Div:
    return html.Div(
        [dmc.Title("Not found", order=2), dmc.Text(f"No page at {path}."), html.A("All rooms", href="/")]
    )
