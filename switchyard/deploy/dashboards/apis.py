"""Panel of the other APIs the gateway serves (``POST /v1/responses``, ``POST /v1/messages``),
on the Overview board: their requests by how they were served. Requests the gateway cannot
translate to chat completions are refused 400 (alert ``SwitchyardApiTranslationRefusals``)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["api_requests"]


def api_requests() -> Panel:
    return timeseries(
        "Responses / Messages API requests",
        "Requests per second to the OpenAI Responses and Anthropic Messages APIs, by API and "
        "outcome (5m): translated to chat completions, native (passed through to a model "
        "with the responses capability) or refused (400: input items, tools or "
        "previous_response_id that chat completions cannot express).",
        [
            target(
                "sum by (api, outcome) (rate(switchyard_api_requests_total[5m]))",
                "{{api}}: {{outcome}}",
            )
        ],
        "reqps",
        w=24,
    )
