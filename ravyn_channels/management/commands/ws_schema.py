"""``manage.py ws_schema``: an AsyncAPI 3.0 document of every topic socket."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ravyn_channels.topics.schema import asyncapi_document


class Command(BaseCommand):
    help = (
        "Write an AsyncAPI 3.0 document (JSON) of every topic, event and payload schema of the "
        "project's topic sockets (ravyn_channels.topics), from the handlers' annotations."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("-o", "--output", help="Write to this file instead of standard output.")
        parser.add_argument("--title", default="Topics", help="info.title of the document.")
        parser.add_argument("--doc-version", dest="doc_version", default="1.0.0", help="info.version of the document.")
        parser.add_argument("--server", help="A server URL for servers.default, e.g. wss://example.com.")

    def handle(self, *args: Any, **options: Any) -> None:
        doc = asyncapi_document(title=options["title"], version=options["doc_version"], server=options["server"])
        text = json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
        if options["output"]:
            with open(options["output"], "w", encoding="utf-8") as out:
                out.write(text)
            self.stderr.write(f"Wrote {len(doc['channels'])} topics to {options['output']}.")
        else:
            self.stdout.write(text, ending="")
