"""Copy the hub's configuration schema into the chart's values schema (``hub.config``).

``firecrestspawner/hubconfig.schema.json`` is the source; the chart's
``values.schema.json`` carries it under ``properties.hub.properties.config`` so that
``helm template``/``helm install`` refuse a misspelt hub setting. After changing the
source, run ``python -m tests.chart.sync_schema``; test_render.py checks they agree.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from firecrestspawner import hubconfig
from tests.chart.helmtools import CHART

VALUES_SCHEMA = CHART / "values.schema.json"


def synced() -> str:
    """The chart's values schema text with the hub schema copied in."""
    chart: dict[str, Any] = json.loads(VALUES_SCHEMA.read_text())
    hub = hubconfig.schema()
    for key in ("$schema", "title"):
        hub.pop(key, None)
    config = chart["properties"]["hub"]["properties"]["config"]
    hub["description"] = config.get("description", hub.get("description", ""))
    chart["properties"]["hub"]["properties"]["config"] = hub
    return json.dumps(chart, indent=2) + "\n"


def main() -> int:
    text = synced()
    if json.loads(VALUES_SCHEMA.read_text()) == json.loads(text):
        print(f"{VALUES_SCHEMA}: already in step")
    else:
        VALUES_SCHEMA.write_text(text)
        print(f"{VALUES_SCHEMA}: hub.config updated from firecrestspawner/hubconfig.schema.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
