"""``/metrics`` in the Prometheus text exposition format, kept by hand (a few counters and histograms)."""

from __future__ import annotations

import threading
from collections import defaultdict

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{str(v).replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
                     for k, v in sorted(labels.items()))
    return "{" + inner + "}" if inner else ""


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self.requests: dict[tuple, int] = defaultdict(int)  # (endpoint, status)
        self.rows: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)  # by kind
        self.latency: dict[str, list[float]] = {}  # endpoint -> [count per bucket..., +Inf count, sum]
        self.streams_open = 0

    def observe(self, endpoint: str, status: int, seconds: float, rows: int, nbytes: int) -> None:
        with self._lock:
            self.requests[(endpoint, str(status))] += 1
            self.rows[endpoint] += rows
            self.bytes[endpoint] += nbytes
            h = self.latency.setdefault(endpoint, [0.0] * (len(LATENCY_BUCKETS) + 2))
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    h[i] += 1
            h[-2] += 1
            h[-1] += seconds

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def stream(self, delta: int) -> None:
        with self._lock:
            self.streams_open += delta

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP lake_serve_requests_total Requests answered, by endpoint and status.",
                     "# TYPE lake_serve_requests_total counter"]
            lines += [f"lake_serve_requests_total{_labels(endpoint=e, status=s)} {n}" for (e, s), n in sorted(self.requests.items())]
            lines += ["# HELP lake_serve_rows_total Rows served, by endpoint.", "# TYPE lake_serve_rows_total counter"]
            lines += [f"lake_serve_rows_total{_labels(endpoint=e)} {n}" for e, n in sorted(self.rows.items())]
            lines += ["# HELP lake_serve_bytes_total Response body bytes sent, by endpoint.",
                      "# TYPE lake_serve_bytes_total counter"]
            lines += [f"lake_serve_bytes_total{_labels(endpoint=e)} {n}" for e, n in sorted(self.bytes.items())]
            lines += ["# HELP lake_serve_errors_total Requests that failed, by kind.", "# TYPE lake_serve_errors_total counter"]
            lines += [f"lake_serve_errors_total{_labels(kind=k)} {n}" for k, n in sorted(self.errors.items())]
            lines += ["# HELP lake_serve_request_seconds Request latency to the last byte, by endpoint.",
                      "# TYPE lake_serve_request_seconds histogram"]
            for e, h in sorted(self.latency.items()):
                for bound, n in zip(LATENCY_BUCKETS, h):
                    lines.append(f"lake_serve_request_seconds_bucket{_labels(endpoint=e, le=repr(bound))} {int(n)}")
                lines.append(f"lake_serve_request_seconds_bucket{_labels(endpoint=e, le='+Inf')} {int(h[-2])}")
                lines.append(f"lake_serve_request_seconds_count{_labels(endpoint=e)} {int(h[-2])}")
                lines.append(f"lake_serve_request_seconds_sum{_labels(endpoint=e)} {h[-1]:.6f}")
            lines += ["# HELP lake_serve_streams_open Row streams being sent right now.", "# TYPE lake_serve_streams_open gauge",
                      f"lake_serve_streams_open {self.streams_open}"]
        return "\n".join(lines) + "\n"
