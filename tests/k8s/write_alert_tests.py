"""Writes deploy/prometheus/alerts.test.yml, the `promtool test rules` unit tests of
deploy/prometheus/alerts.yml: for every alert, input series under which it fires and input series
under which it stays silent (or only pending).

The cases are below. The annotations a firing case expects (summary, description, runbook_url,
with their templates expanded) are taken from promtool's own rendering on a first run, then
written into the file: review their text in the diff, as with any snapshot test.

    python3 tests/k8s/write_alert_tests.py      # needs promtool (Debian's prometheus) and PyYAML
    promtool test rules deploy/prometheus/alerts.test.yml
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/alerts.yml"
OUTPUT = ROOT / "deploy/prometheus/alerts.test.yml"

# The labels Kubernetes service discovery puts on every driftwatch series.
POD = 'namespace="ml",pod="iris-7d9f5-x2x9q",instance="10.1.2.3:8101",job="driftwatch"'
# A pod of a model with the same name in another namespace (the fleet cases).
STAGING_POD = 'namespace="ml-staging",pod="iris-5c8d7-q7w2m",instance="10.1.9.8:8101",job="driftwatch"'


def s(name, labels, values):
    """One input series of the pod above."""
    return (f"{name}{{{POD},{labels}}}", values)


# (alert, what the case shows, input series, [(eval time, firing alert labels or None, why)]).
# None: no alert firing at that time (silent or still pending). Evaluation every minute; input
# samples every minute, except the performance case (every 5 minutes over two days).
cases = [
 ("DriftwatchFeatureDrift", "one input column drifts from minute 11; another input column and an output column do not count",
  [s("driftwatch_drift_detected", 'model="iris",column="petal_length",role="input"', "0x10 1x30"),
   s("driftwatch_drift_detected", 'model="iris",column="sepal_width",role="input"', "0x40"),
   s("driftwatch_drift_detected", 'model="iris",column="class",role="output"', "1x40")],
  [("20m", None, "drifted for 9 minutes: still pending"),
   ("30m", {"model": "iris", "column": "petal_length", "namespace": "ml"}, "drifted for 19 minutes")]),
 ("DriftwatchFeatureDrift", "a drift that lasts one window (10 minutes) and clears stays silent",
  [s("driftwatch_drift_detected", 'model="iris",column="petal_length",role="input"', "0x10 1x10 0x20")],
  [("20m", None, "pending"), ("35m", None, "cleared")]),
 ("DriftwatchDatasetDrift", "75% of the inputs drifted from minute 6",
  [s("driftwatch_dataset_drift_share", 'model="iris"', "0.25x5 0.75x30"),
   s("driftwatch_dataset_drift_detected", 'model="iris"', "0x5 1x30")],
  [("12m", None, "pending"), ("30m", {"model": "iris", "namespace": "ml"}, "drifted for 24 minutes")]),
 ("DriftwatchDatasetDrift", "a share below monitoring.dataset_drift_share is not dataset drift",
  [s("driftwatch_dataset_drift_share", 'model="iris"', "0.25x40"),
   s("driftwatch_dataset_drift_detected", 'model="iris"', "0x40")],
  [("30m", None, "no dataset drift")]),
 ("DriftwatchPredictionDrift", "the output column drifts; an input drift alone does not count",
  [s("driftwatch_drift_detected", 'model="iris",column="class",role="output"', "0x5 1x30"),
   s("driftwatch_drift_detected", 'model="churn",column="tenure",role="input"', "1x35")],
  [("15m", None, "pending"), ("30m", {"model": "iris", "column": "class", "namespace": "ml"}, "drifted for 24 minutes")]),
 ("DriftwatchPredictionDrift", "stable predictions stay silent",
  [s("driftwatch_drift_detected", 'model="iris",column="class",role="output"', "0x40")],
  [("30m", None, "no drift")]),
]


def bins(model, column, a, b, ref=(0.5, 0.5), role="input", pod=POD):
    return [
      (f'driftwatch_column_bin_rows_total{{{pod},model="{model}",column="{column}",role="{role}",bin="(-inf, 5]"}}', a),
      (f'driftwatch_column_bin_rows_total{{{pod},model="{model}",column="{column}",role="{role}",bin="(5, +inf)"}}', b),
      (f'driftwatch_reference_bin_fraction{{{pod},model="{model}",column="{column}",role="{role}",bin="(-inf, 5]"}}', f"{ref[0]}x150"),
      (f'driftwatch_reference_bin_fraction{{{pod},model="{model}",column="{column}",role="{role}",bin="(5, +inf)"}}', f"{ref[1]}x150"),
    ]
cases += [
 ("DriftwatchFleetFeatureDrift", "every row of the last hour falls in one of two reference halves: fleet PSI 4.6",
  bins("iris", "petal_length", "0+10x150", "0x150"),
  [("65m", None, "the fleet PSI crossed 0.2 early, but needs 500 rows and 30 minutes"),
   ("100m", {"model": "iris", "column": "petal_length", "role": "input", "namespace": "ml"}, "firing")]),
 ("DriftwatchFleetFeatureDrift", "rows split like the reference (PSI 0), and a skewed column with too few rows, stay silent",
  bins("iris", "petal_length", "0+5x150", "0+5x150") + bins("iris", "sepal_width", "0+1x150", "0x150"),
  [("100m", None, "no fleet drift")]),
 ("DriftwatchFleetFeatureDrift", "model iris drifts in namespace ml-staging only; its busier namesake in ml, which would dilute the PSI to 0.008 if the fleets were merged, stays silent",
  bins("iris", "petal_length", "0+50x150", "0+50x150") + bins("iris", "petal_length", "0+10x150", "0x150", pod=STAGING_POD),
  [("65m", None, "ml-staging: not yet 500 rows for 30 minutes"),
   ("100m", {"model": "iris", "column": "petal_length", "role": "input", "namespace": "ml-staging"}, "only the ml-staging fleet")]),
 ("DriftwatchMissingValues", "10% of petal_length values are missing",
  [s("driftwatch_column_values_total", 'model="iris",column="petal_length",role="input",status="ok"', "0+90x40"),
   s("driftwatch_column_values_total", 'model="iris",column="petal_length",role="input",status="missing"', "0+10x40")],
  [("10m", None, "pending"), ("30m", {"model": "iris", "column": "petal_length", "role": "input", "namespace": "ml"}, "firing")]),
 ("DriftwatchMissingValues", "1% missing and 10% out of range stay silent (out of range is DriftwatchInvalidValues)",
  [s("driftwatch_column_values_total", 'model="iris",column="petal_length",role="input",status="ok"', "0+89x40"),
   s("driftwatch_column_values_total", 'model="iris",column="petal_length",role="input",status="nan"', "0+1x40"),
   s("driftwatch_column_values_total", 'model="iris",column="petal_length",role="input",status="out_of_range"', "0+10x40")],
  [("30m", None, "below 5%")]),
 ("DriftwatchInvalidValues", "10% of sepal_width values are out of the reference range",
  [s("driftwatch_column_values_total", 'model="iris",column="sepal_width",role="input",status="ok"', "0+90x40"),
   s("driftwatch_column_values_total", 'model="iris",column="sepal_width",role="input",status="out_of_range"', "0+10x40")],
  [("10m", None, "pending"), ("30m", {"model": "iris", "column": "sepal_width", "role": "input", "namespace": "ml"}, "firing")]),
 ("DriftwatchInvalidValues", "1% unseen categories and 10% nulls stay silent (nulls are DriftwatchMissingValues)",
  [s("driftwatch_column_values_total", 'model="churn",column="plan",role="input",status="ok"', "0+89x40"),
   s("driftwatch_column_values_total", 'model="churn",column="plan",role="input",status="unseen_category"', "0+1x40"),
   s("driftwatch_column_values_total", 'model="churn",column="plan",role="input",status="null"', "0+10x40")],
  [("30m", None, "below 5%")]),
 ("DriftwatchPayloadUnreadable", "10% of the namespace's exchanges are unreadable iris payloads",
  [s("driftwatch_extract_errors_total", 'model="iris",reason="not_json"', "0+10x40"),
   s("driftwatch_http_requests_total", 'model="iris",method="POST",code="200"', "0+100x40")],
  [("10m", None, "pending"), ("30m", {"model": "iris", "reason": "not_json", "namespace": "ml"}, "firing")]),
 ("DriftwatchPayloadUnreadable", "1% unreadable stays silent",
  [s("driftwatch_extract_errors_total", 'model="iris",reason="not_json"', "0+1x40"),
   s("driftwatch_http_requests_total", 'model="iris",method="POST",code="200"', "0+100x40")],
  [("30m", None, "below 5%")]),
 ("DriftwatchOutlierRate", "10 of 100 rows per minute are outliers",
  [s("driftwatch_outlier_rows_total", 'model="iris"', "0+10x40"),
   s("driftwatch_column_values_total", 'model="iris",column="petal_length",role="input",status="ok"', "0+100x40"),
   s("driftwatch_column_values_total", 'model="iris",column="sepal_width",role="input",status="ok"', "0+95x40"),
   s("driftwatch_column_values_total", 'model="iris",column="sepal_width",role="input",status="missing"', "0+5x40")],
  [("10m", None, "pending"), ("30m", {"model": "iris", "namespace": "ml"}, "firing")]),
 ("DriftwatchOutlierRate", "1 outlier in 100 rows stays silent",
  [s("driftwatch_outlier_rows_total", 'model="iris"', "0+1x40"),
   s("driftwatch_column_values_total", 'model="iris",column="petal_length",role="input",status="ok"', "0+100x40")],
  [("30m", None, "below 5%")]),
 ("DriftwatchChangePoint", "Page-Hinkley flags prediction_mean at minute 11",
  [s("driftwatch_change_points_total", 'model="iris",signal="prediction_mean",detector="page_hinkley"', "0x10 1x40")],
  [("5m", None, "nothing yet"), ("15m", {"model": "iris", "signal": "prediction_mean", "detector": "page_hinkley", "namespace": "ml"}, "fires at once (info)")]),
 ("DriftwatchChangePoint", "a change point more than 15 minutes old is no longer news",
  [s("driftwatch_change_points_total", 'model="iris",signal="prediction_mean",detector="page_hinkley"', "0x10 1x40")],
  [("40m", None, "silent again")]),
 ("DriftwatchPerformanceDrop", "two days at accuracy 0.9 and mae 1.0, then accuracy 0.7 and mae 1.5 (alerts); a 4% dip in accuracy, a better mae, a steady f1, and a model whose performance exists only from its first window of labels at 25h (no zeros before it) stay silent (one test: two simulated days are slow)",
  [s("driftwatch_model_performance", 'model="iris",metric="accuracy"', "0.9x600 0.7x20"),
   s("driftwatch_model_performance", 'model="iris",metric="f1"', "0.8x620"),
   s("driftwatch_model_performance", 'model="taxi",metric="mae"', "1x600 1.5x20"),
   s("driftwatch_model_performance", 'model="churn",metric="accuracy"', "0.9x600 0.865x20"),
   s("driftwatch_model_performance", 'model="eta",metric="rmse"', "1x600 0.8x20"),
   s("driftwatch_model_performance", 'model="fresh",metric="mae"', "_x300 1x320")],
  [("50h20m", None, "worse for 15 minutes: pending"),
   ("51h", [{"model": "iris", "metric": "accuracy", "namespace": "ml"}, {"model": "taxi", "metric": "mae", "namespace": "ml"}], "worse for 55 minutes; churn, eta and f1 within 10% or better; fresh compared only with its own windows")]),
 ("DriftwatchPerformanceBelowBaseline", "accuracy of iris undercuts its baseline of 0.9 (margin 0.05) from minute 11; churn's f1 within its margin and a model without baselines do not count",
  [s("driftwatch_model_performance", 'model="iris",metric="accuracy"', "0.92x10 0.8x30"),
   s("driftwatch_model_performance_baseline", 'model="iris",metric="accuracy"', "0.9x40"),
   s("driftwatch_model_performance_drop", 'model="iris",metric="accuracy"', "0x10 1x30"),
   s("driftwatch_model_performance", 'model="churn",metric="f1"', "0.7x40"),
   s("driftwatch_model_performance_baseline", 'model="churn",metric="f1"', "0.72x40"),
   s("driftwatch_model_performance_drop", 'model="churn",metric="f1"', "0x40"),
   s("driftwatch_model_performance", 'model="eta",metric="mae"', "9x40")],
  [("20m", None, "below the baseline for 9 minutes: pending"),
   ("30m", {"model": "iris", "metric": "accuracy", "namespace": "ml"}, "below the baseline for 19 minutes")]),
 ("DriftwatchPerformanceBelowBaseline", "one bad window of labels (5 minutes) that the next window clears stays silent, and so does a model within its baseline",
  [s("driftwatch_model_performance_drop", 'model="iris",metric="accuracy"', "0x10 1x5 0x25"),
   s("driftwatch_model_performance_drop", 'model="taxi",metric="rmse"', "0x40")],
  [("14m", None, "pending"), ("30m", None, "back within the margin")]),
 ("DriftwatchConceptDrift", "the error-stream detectors flag concept drift from minute 6",
  [s("driftwatch_concept_drift_detected", 'model="iris"', "0x5 1x30")],
  [("8m", None, "pending"), ("20m", {"model": "iris", "namespace": "ml"}, "firing")]),
 ("DriftwatchConceptDrift", "no concept drift, no alert",
  [s("driftwatch_concept_drift_detected", 'model="iris"', "0x40")],
  [("30m", None, "silent")]),
 ("DriftwatchHomogenization", "exposure keeps concentrating on route recs",
  [s("driftwatch_recs_homogenization", 'route="recs"', "1x90")],
  [("50m", None, "pending for less than an hour"), ("75m", {"route": "recs", "namespace": "ml"}, "firing")]),
 ("DriftwatchHomogenization", "diverse recommendations stay silent",
  [s("driftwatch_recs_homogenization", 'route="recs"', "0x90")],
  [("75m", None, "silent")]),
 ("DriftwatchHighErrorRate", "10% of iris responses are 5xx",
  [s("driftwatch_http_requests_total", 'model="iris",method="POST",code="200"', "0+90x40"),
   s("driftwatch_http_requests_total", 'model="iris",method="POST",code="502"', "0+10x40")],
  [("4m", None, "pending"), ("20m", {"model": "iris", "namespace": "ml"}, "firing")]),
 ("DriftwatchHighErrorRate", "1% errors, and half of a trickle of 1 request per 2 minutes, stay silent",
  [s("driftwatch_http_requests_total", 'model="iris",method="POST",code="200"', "0+99x40"),
   s("driftwatch_http_requests_total", 'model="iris",method="POST",code="500"', "0+1x40"),
   s("driftwatch_http_requests_total", 'model="rare",method="POST",code="200"', "0+0.25x40"),
   s("driftwatch_http_requests_total", 'model="rare",method="POST",code="504"', "0+0.25x40")],
  [("20m", None, "silent")]),
]


def hist(model, counts):
    return [s("driftwatch_http_request_duration_seconds_bucket", f'model="{model}",le="{le}"', v) for le, v in counts]
cases += [
 ("DriftwatchHighLatency", "every request takes between 1s and 2.5s",
  hist("iris", [("0.1", "0x40"), ("0.5", "0x40"), ("1", "0x40"), ("2.5", "0+10x40"), ("+Inf", "0+10x40")]),
  [("8m", None, "pending"), ("20m", {"model": "iris", "namespace": "ml"}, "firing")]),
 ("DriftwatchHighLatency", "every request under 100ms stays silent",
  hist("iris", [("0.1", "0+10x40"), ("0.5", "0+10x40"), ("1", "0+10x40"), ("2.5", "0+10x40"), ("+Inf", "0+10x40")]),
  [("20m", None, "silent")]),
 ("DriftwatchUpstreamDown", "every request fails to connect to the model server",
  [s("driftwatch_upstream_errors_total", 'kind="connect"', "0+10x40"),
   s("driftwatch_http_requests_total", 'model="iris",method="POST",code="502"', "0+10x40")],
  [("2m", None, "pending"), ("10m", {"pod": "iris-7d9f5-x2x9q", "instance": "10.1.2.3:8101", "namespace": "ml"}, "firing")]),
 ("DriftwatchUpstreamDown", "1 connect error in 100 requests stays silent",
  [s("driftwatch_upstream_errors_total", 'kind="connect"', "0+1x40"),
   s("driftwatch_http_requests_total", 'model="iris",method="POST",code="200"', "0+99x40"),
   s("driftwatch_http_requests_total", 'model="iris",method="POST",code="502"', "0+1x40")],
  [("10m", None, "silent")]),
 ("DriftwatchRecordsDropped", "the http sink drops records from minute 6 on",
  [s("driftwatch_records_total", 'sink="http",outcome="dropped_queue_full"', "0x5 0+10x30"),
   s("driftwatch_records_total", 'sink="http",outcome="delivered"', "0+100x40")],
  [("8m", None, "pending"), ("15m", {"sink": "http", "outcome": "dropped_queue_full", "pod": "iris-7d9f5-x2x9q", "instance": "10.1.2.3:8101", "namespace": "ml"}, "firing")]),
 ("DriftwatchRecordsDropped", "drops that ended more than 10 minutes ago, and delivered records, stay silent",
  [s("driftwatch_records_total", 'sink="http",outcome="dropped_spool_full"', "0+10x5 50x40"),
   s("driftwatch_records_total", 'sink="http",outcome="delivered"', "0+100x40")],
  [("30m", None, "silent")]),
 ("DriftwatchRecordsFailed", "the collector rejects records with 4xx",
  [s("driftwatch_records_total", 'sink="http",outcome="failed"', "0+3x40")],
  [("3m", None, "pending"), ("15m", {"sink": "http", "pod": "iris-7d9f5-x2x9q", "instance": "10.1.2.3:8101", "namespace": "ml"}, "firing")]),
 ("DriftwatchRecordsFailed", "no failures, no alert",
  [s("driftwatch_records_total", 'sink="http",outcome="failed"', "0x40"),
   s("driftwatch_records_total", 'sink="http",outcome="spooled"', "0+10x40")],
  [("15m", None, "silent")]),
 ("DriftwatchSinkSpooling", "the kafka sink spools 1 MiB for 25 minutes",
  [s("driftwatch_sink_spool_bytes", 'sink="kafka"', "0x5 1048576x30")],
  [("12m", None, "pending"), ("30m", {"sink": "kafka", "pod": "iris-7d9f5-x2x9q", "instance": "10.1.2.3:8101", "namespace": "ml"}, "firing")]),
 ("DriftwatchSinkSpooling", "a 10-minute spool that drained stays silent",
  [s("driftwatch_sink_spool_bytes", 'sink="kafka"', "0x5 4096x10 0x25")],
  [("14m", None, "pending"), ("30m", None, "drained")]),
 ("DriftwatchAnalysisShedding", "the analysis worker drops 5 observations per minute",
  [s("driftwatch_analysis_observations_total", 'result="dropped_queue_full"', "0+5x40"),
   s("driftwatch_analysis_observations_total", 'result="processed"', "0+1000x40")],
  [("5m", None, "pending"), ("20m", {"pod": "iris-7d9f5-x2x9q", "instance": "10.1.2.3:8101", "namespace": "ml"}, "firing")]),
 ("DriftwatchAnalysisShedding", "no drops, no alert",
  [s("driftwatch_analysis_observations_total", 'result="dropped_queue_full"', "0x40"),
   s("driftwatch_analysis_observations_total", 'result="processed"', "0+1000x40")],
  [("20m", None, "silent")]),
]


def seconds(duration):
    """promtool prints 75m as 1h15m: compare durations by value."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)(d|h|m|s)", duration))


def quote(value):
    return "'" + value.replace("'", "''") + "'"


def render(static_labels, annotations):
    out = [
        "# Unit tests of alerts.yml (and of the recording rules it uses), for `promtool test rules`:",
        "# every alert fires on its condition, and stays silent (or pending) otherwise.",
        "#   promtool test rules deploy/prometheus/alerts.test.yml",
        "# Generated by tests/k8s/write_alert_tests.py: edit the cases there and run it again.",
        "rule_files:",
        "  - alerts.yml",
        "  - recording-rules.yml",
        "evaluation_interval: 1m",
        "tests:",
    ]
    for alert, comment, series, evals in cases:
        interval = "5m" if alert == "DriftwatchPerformanceDrop" else "1m"
        out.append(f"  # {alert}: {comment}.")
        out.append(f"  - name: {quote(alert + ': ' + comment)}")
        out.append(f"    interval: {interval}")
        out.append("    input_series:")
        for name, values in series:
            out.append(f"      - series: {quote(name)}")
            out.append(f"        values: {quote(values)}")
        out.append("    alert_rule_test:")
        for eval_time, firing, why in evals:
            out.append(f"      # {why}")
            out.append(f"      - eval_time: {eval_time}")
            out.append(f"        alertname: {alert}")
            if firing is None:
                out.append("        exp_alerts: []")
                continue
            out.append("        exp_alerts:")
            for labels in firing if isinstance(firing, list) else [firing]:
                full = dict(static_labels[alert])
                full.update(labels)
                out.append("          - exp_labels:")
                for key in sorted(full):
                    out.append(f"              {key}: {quote(full[key])}")
                found = annotations.get((alert, seconds(eval_time), tuple(sorted(labels.items()))))
                if found:
                    out.append("            exp_annotations:")
                    for key in sorted(found):
                        out.append(f"              {key}: {quote(found[key])}")
    return "\n".join(out) + "\n"


def promtool_annotations(text):
    """The annotations of every alert promtool reports as `got` in a failed run."""
    annotations = {}
    failures = r"alertname: (\w+), time: (\S+), \n\s+exp:\[.*?\], \n\s+got:\[(.*?)\n\s+\]"
    for failure in re.finditer(failures, text, re.S):
        alert, time, got = failure.groups()
        for entry in re.finditer(
            r"Labels:\{(.*?)\}\n\s+Annotations:\{(.*?)\},?\n", got + "\n", re.S
        ):
            pairs = r'(\w+)="((?:[^"\\]|\\.)*)"'
            labels = dict(re.findall(pairs, entry.group(1)))
            for static in ("alertname", "severity", "team", "job"):
                labels.pop(static, None)
            annotations[(alert, seconds(time), tuple(sorted(labels.items())))] = {
                key: json.loads('"' + value + '"')
                for key, value in re.findall(pairs, entry.group(2))
            }
    return annotations


def main():
    rules = yaml.safe_load(RULES.read_text())
    static_labels = {r["alert"]: r["labels"] for g in rules["groups"] for r in g["rules"]}
    missing = set(static_labels) - {case[0] for case in cases}
    if missing:
        sys.exit(f"alerts without test cases: {sorted(missing)}")
    OUTPUT.write_text(render(static_labels, {}))
    first = subprocess.run(["promtool", "test", "rules", str(OUTPUT)], capture_output=True, text=True)
    OUTPUT.write_text(render(static_labels, promtool_annotations(first.stdout + first.stderr)))
    final = subprocess.run(["promtool", "test", "rules", str(OUTPUT)], capture_output=True, text=True)
    sys.stdout.write(final.stdout + final.stderr)
    sys.exit(final.returncode)


if __name__ == "__main__":
    main()
