"""Parses scrapes of pcapd's /metrics with the reference parsers of the Python
prometheus-client package: the OpenMetrics parser (what pcapd serves to scrapers that ask
for it, checked strictly, `# EOF` included) and the classic Prometheus text-format parser
(what it serves to the others).

usage: metrics_check.py OPENMETRICS_FILE CLASSIC_FILE
Prints JSON: {"families": {name: type}, "samples": [[name, labels, value], ...],
"text_samples": [...]} where text_samples come from the classic parser.
"""

import json
import sys

from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    classic = open(sys.argv[2], encoding="utf-8").read()
    families = {}
    samples = []
    for family in openmetrics_families(text):
        families[family.name] = family.type
        samples.extend([s.name, s.labels, s.value] for s in family.samples)
    text_samples = [
        [s.name, s.labels, s.value] for f in text_families(classic) for s in f.samples
    ]
    json.dump(
        {"families": families, "samples": samples, "text_samples": text_samples},
        sys.stdout,
    )


if __name__ == "__main__":
    main()
