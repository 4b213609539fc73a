"""``path("metrics/", include("ravyn_channels.metrics.urls"))``: the Prometheus text format of this process.

Protect it as you would any internal endpoint (a reverse proxy rule, a network
policy): it names your routes and counts your traffic.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Every ravyn_channels metric (and the rest of the default registry) in Prometheus' text format."""
    from .prom import CONTENT_TYPE_LATEST, exposition

    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


app_name = "ravyn_channels_metrics"
urlpatterns = [path("", metrics_view, name="metrics")]
