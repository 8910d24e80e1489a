"""Metric names in PromQL, and the names the operator and vLLM serve: what the chart's alerts and
dashboard may query (tests/unit/test_metrics.py, tests/e2e/test_prometheus.py)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from prometheus_client.registry import REGISTRY, CollectorRegistry

# vLLM's Prometheus metrics as `vllm serve` 0.33.0 (the pinned release) exposes them, by family
# name and type: every `_gauge_cls`/`_counter_cls`/`_histogram_cls(name="vllm:...")` of
# vllm/v1/metrics/loggers.py in the vllm-0.33.0 wheel. Its prometheus_client adds the suffixes.
VLLM_0_33_0_FAMILIES = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:num_requests_waiting_by_reason": "gauge",
    "vllm:num_requests_kv_fetch_by_stage": "gauge",
    "vllm:engine_sleep_state": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:corrupted_requests": "counter",
    "vllm:watermark_requests": "counter",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:external_prefix_cache_queries": "counter",
    "vllm:external_prefix_cache_hits": "counter",
    "vllm:mm_cache_queries": "counter",
    "vllm:mm_cache_hits": "counter",
    "vllm:num_preemptions": "counter",
    "vllm:prompt_tokens": "counter",
    "vllm:prompt_tokens_by_source": "counter",
    "vllm:prompt_tokens_cached": "counter",
    "vllm:prompt_tokens_cached_by_source": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:admission_rejections": "counter",
    "vllm:request_prompt_tokens": "histogram",
    "vllm:request_generation_tokens": "histogram",
    "vllm:iteration_tokens_total": "histogram",
    "vllm:request_max_num_generation_tokens": "histogram",
    "vllm:request_params_n": "histogram",
    "vllm:request_params_max_tokens": "histogram",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:request_time_per_output_token_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:request_inference_time_seconds": "histogram",
    "vllm:request_prefill_time_seconds": "histogram",
    "vllm:request_decode_time_seconds": "histogram",
    "vllm:request_num_preemptions": "histogram",
    "vllm:request_prefill_kv_computed_tokens": "histogram",
    "vllm:kv_block_lifetime_seconds": "histogram",
    "vllm:kv_block_idle_before_evict_seconds": "histogram",
    "vllm:kv_block_reuse_gap_seconds": "histogram",
    "vllm:lora_requests_info": "gauge",
}

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def series_names(family: str, type_: str) -> set[str]:
    """The series names a prometheus_client family of `type_` is exposed as."""
    base = family.removesuffix("_total") if type_ == "counter" else family
    return {base + suffix for suffix in _SUFFIXES[type_]}


def vllm_series() -> set[str]:
    return {name for family, type_ in VLLM_0_33_0_FAMILIES.items() for name in series_names(family, type_)}


def operator_series(registry: CollectorRegistry = REGISTRY) -> set[str]:
    """Every `shinsa_*` series name the operator's registry serves (families without samples too)."""
    import shinsa.controllers.metrics  # noqa: F401  (registers the operator's metrics)

    names: set[str] = set()
    for family in registry.collect():
        if family.name.startswith("shinsa_"):
            names |= series_names(family.name, family.type)
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
     "group_right", "inf", "nan", "atan2"}
)  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects. Not a parser: it drops strings, label
    matchers, ranges, grouping clauses, offsets and Grafana's `$variables`, then keeps the
    identifiers that are neither keywords nor function or aggregation calls; enough for the
    expressions of this chart, and it errs towards reporting a name (a test then fails loudly)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "", text)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\boffset\s+\S+", " ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group()
        if name.lower() in _KEYWORDS or re.match(r"\s*\(", text[match.end() :]):
            continue
        names.add(name)
    return names


def names_in(exprs: Iterable[str]) -> set[str]:
    return {name for expr in exprs for name in metric_names(expr)}
