from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def index(request: HttpRequest) -> HttpResponse:
    """The chat page: pick a nickname (or log in) and a room."""
    return render(request, "chat/index.html")


def echo(request: HttpRequest) -> HttpResponse:
    """A page to try the seed's echo handler at ``/ws/{client_id}``."""
    return render(request, "chat/echo.html")
