# Reads an OpenMetrics text (as Plenum's /metrics serves it) from standard input with the
# Prometheus project's own parser (Debian's python3-prometheus-client) and prints every
# sample as one JSON object a line: {"name", "labels", "value"}. A text the parser refuses
# makes it fail with the parser's reason.
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        print(json.dumps({"name": sample.name, "labels": sample.labels, "value": sample.value}))
