#!/usr/bin/python3
"""Small HTTP client for tests. Prints JSON {status, body} or, with --metrics, the parsed samples.
  http_get.py URL [--method POST] [--metrics]"""
import json, sys, urllib.request, urllib.error

def main():
    url = sys.argv[1]
    method = sys.argv[sys.argv.index("--method") + 1] if "--method" in sys.argv else "GET"
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, body = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read().decode()
    if "--metrics" in sys.argv:
        # The independent parser: prometheus_client refuses malformed exposition text.
        from prometheus_client.parser import text_string_to_metric_families
        samples = []
        for family in text_string_to_metric_families(body):
            for s in family.samples:
                samples.append({"name": s.name, "labels": s.labels, "value": s.value})
        print(json.dumps({"status": status, "samples": samples}))
    else:
        print(json.dumps({"status": status, "body": body}))

if __name__ == "__main__":
    main()
