"""The ``context`` agent: summaries of text or KPI rows, by an OpenAI-compatible API or offline.

The offline ``extractive`` provider needs no key and no network and is deterministic: rows
become one sentence each plus aggregate lines; text keeps its highest-scoring sentences.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_resources.base import Agent, AgentError, AgentRequest, AgentResult
from agent_resources.http import call_json, cancellable_client, masker_for

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_SYSTEM_PROMPT = (
    "You summarize business material for busy readers. Be accurate and concise, keep the "
    "numbers that matter, and never invent figures."
)
_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not now of off on once only or other our ours out over
    own same she should so some such than that the their theirs them then there these they
    this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_GROUP_COLUMNS = (
    "region",
    "segment",
    "market",
    "country",
    "team",
    "channel",
    "product",
    "category",
    "department",
    "month",
    "quarter",
    "period",
    "week",
    "date",
    "year",
)
_AVERAGED = re.compile(r"rate|ratio|pct|percent|share|margin|score|avg|average|mean|nps", re.I)
_ACRONYMS = frozenset({"mrr", "arr", "kpi", "cac", "ltv", "nps", "roi", "aov", "arpu", "ctr"})
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+|\n\s*\n")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_MAX_LISTED_VALUES = 6


class ContextConfig(BaseModel):
    """Which provider summarizes, and how."""

    model_config = ConfigDict(extra="forbid")

    provider: Literal["auto", "extractive", "openai"] = Field(
        "auto", description="auto: openai when the API key env var is set, else extractive."
    )
    base_url: str | None = Field(None, description="Default: env OPENAI_BASE_URL, else OpenAI.")
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    max_sentences: int = Field(5, ge=1, le=100)
    max_rows: int = Field(20, ge=1, description="Rows described one by one (extractive).")
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    temperature: float | None = Field(None, ge=0, le=2)


class ContextInput(BaseModel):
    """The material to summarize: ``text``, ``rows`` (a list of mappings) or both."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = None
    rows: list[dict[str, Any]] | None = None
    instructions: str | None = Field(None, description="Used by the openai provider only.")
    max_sentences: int | None = Field(None, ge=1, le=100)

    @model_validator(mode="after")
    def _has_material(self) -> ContextInput:
        if self.text is None and self.rows is None:
            raise ValueError("give `text` or `rows` to summarize")
        return self


class ContextAgent(Agent):
    """Summarizes a step's ``text`` or ``rows``.

    Output: ``{"summary", "provider", "model"}``; usage: token counts (word-based estimates for
    the extractive provider, the API's ``usage`` for openai) and ``latency_ms``. The openai
    provider POSTs ``{base_url}/chat/completions`` with the key from ``api_key_env``, which must
    be a variable the catalog entry declares (only those reach the agent).
    """

    config_model = ContextConfig
    input_model = ContextInput
    config: ContextConfig

    def run(self, request: AgentRequest) -> AgentResult:
        data = self.parse_input(request.input)
        started = time.monotonic()
        if self._provider(request.env) == "openai":
            output, usage = self._openai(data, request)
        else:
            output, usage = self._extractive(data)
        usage["latency_ms"] = round((time.monotonic() - started) * 1000)
        return AgentResult(output=output, usage=usage)

    def _provider(self, env: Mapping[str, str]) -> str:
        if self.config.provider == "auto":
            return "openai" if env.get(self.config.api_key_env) else "extractive"
        return self.config.provider

    def _sentences(self, data: ContextInput) -> int:
        return data.max_sentences or self.config.max_sentences

    def _extractive(self, data: ContextInput) -> tuple[dict[str, Any], dict[str, Any]]:
        parts = []
        if data.rows is not None:
            parts.append(summarize_rows(data.rows, self.config.max_rows))
        if data.text is not None:
            parts.append(summarize_text(data.text, self._sentences(data)))
        summary = "\n".join(part for part in parts if part)
        output = {"summary": summary, "provider": "extractive", "model": None}
        return output, estimated_usage(_material(data), summary)

    def _openai(
        self, data: ContextInput, request: AgentRequest
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        key = request.env.get(self.config.api_key_env, "")
        if not key:
            raise AgentError(
                f"agent '{self.entry.slug}' uses the openai provider but "
                f"{self.config.api_key_env} is not set",
                kind="config",
            )
        masker = masker_for(self.entry, request.env, [key])
        base = self.config.base_url or request.env.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        timeout = request.timeout_seconds or self.entry.limits.timeout_seconds
        with cancellable_client(request.cancellation, timeout=timeout) as client:
            answer = call_json(
                client,
                "POST",
                f"{base.rstrip('/')}/chat/completions",
                masker=masker,
                json=self._chat_body(data),
                headers={"Authorization": f"Bearer {key}"},
            )
        summary = masker.text(completion_text(answer))
        model = answer.get("model") if isinstance(answer.get("model"), str) else self.config.model
        output = {"summary": summary, "provider": "openai", "model": model}
        return output, token_usage(answer)

    def _chat_body(self, data: ContextInput) -> dict[str, Any]:
        asks = [data.instructions or "Summarize the material below."]
        asks.append(f"Use at most {self._sentences(data)} sentences.")
        user = " ".join(asks) + "\n\n" + _material(data)
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": self.config.system_prompt},
                {"role": "user", "content": user},
            ],
        }
        if self.config.temperature is not None:
            body["temperature"] = self.config.temperature
        return body


def _material(data: ContextInput) -> str:
    parts = []
    if data.rows is not None:
        parts.append("Rows (JSON):\n" + json.dumps(data.rows, default=str))
    if data.text is not None:
        parts.append(data.text)
    return "\n\n".join(parts)


def completion_text(answer: Any) -> str:
    """``choices[0].message.content`` of a chat completion.

    Raises:
        AgentError: the body does not have it (kind ``bad_response``).
    """
    try:
        content = answer["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        content = None
    if not isinstance(content, str):
        raise AgentError(
            "unexpected chat completion body: no choices[0].message.content text",
            kind="bad_response",
        )
    return content.strip()


def token_usage(answer: dict[str, Any]) -> dict[str, Any]:
    """The token counts of a chat completion's ``usage``."""
    usage = answer.get("usage")
    if not isinstance(usage, dict):
        return {}
    names = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {name: usage[name] for name in names if isinstance(usage.get(name), int)}


def estimated_usage(prompt: str, completion: str) -> dict[str, Any]:
    """Token counts estimated from words (about 4 tokens per 3 words)."""
    prompt_tokens = math.ceil(len(prompt.split()) * 4 / 3)
    completion_tokens = math.ceil(len(completion.split()) * 4 / 3)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "estimated": True,
    }


# --- extractive: text -----------------------------------------------------------------------


def _content_words(sentence: str) -> list[str]:
    words = _WORD.findall(sentence.lower())
    return [w for w in words if w not in _STOPWORDS and len(w) > 1]


def summarize_text(text: str, max_sentences: int) -> str:
    """The ``max_sentences`` sentences richest in the text's frequent words, in their order.

    A sentence scores the sum of its content words' frequencies (stopwords removed), divided by
    the square root of their number; ties go to the earlier sentence.
    """
    sentences = [" ".join(s.split()) for s in _SENTENCE_BREAK.split(text.strip())]
    sentences = [s for s in sentences if s]
    if len(sentences) <= max_sentences:
        return " ".join(sentences)
    words = [_content_words(s) for s in sentences]
    freq = Counter(w for ws in words for w in ws)
    top = max(freq.values(), default=1)
    scores = [sum(freq[w] for w in ws) / top / math.sqrt(len(ws)) if ws else 0.0 for ws in words]
    ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))[:max_sentences]
    return " ".join(sentences[i] for i in sorted(ranked))


# --- extractive: rows -----------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: float) -> str:
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    if abs(value) < 1:
        return f"{value:.3g}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _label(column: str) -> str:
    words = column.replace("_", " ").replace("-", " ").split()
    return " ".join(w.upper() if w.lower() in _ACRONYMS else w for w in words)


def _columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(label columns, numeric columns), in first-seen order."""
    order: dict[str, None] = {}
    for row in rows:
        order.update(dict.fromkeys(row))
    numeric = [
        c
        for c in order
        if any(row.get(c) is not None for row in rows)
        and all(row.get(c) is None or _number(row.get(c)) is not None for row in rows)
    ]
    return [c for c in order if c not in numeric], numeric


def _row_name(row: dict[str, Any], labels: list[str], index: int) -> str:
    parts = [str(row[c]) for c in labels if row.get(c) not in (None, "")]
    return ", ".join(parts) if parts else f"Row {index + 1}"


def _row_sentence(row: dict[str, Any], labels: list[str], numeric: list[str], i: int) -> str:
    values = [(c, _number(row.get(c))) for c in numeric]
    metrics = ", ".join(f"{_label(c)} {_fmt(v)}" for c, v in values if v is not None)
    return f"{_row_name(row, labels, i)}: {metrics or 'no figures'}."


def _group_column(rows: list[dict[str, Any]], labels: list[str]) -> str | None:
    by_name = {c.lower(): c for c in labels}
    for name in _GROUP_COLUMNS:
        column = by_name.get(name)
        if column is None:
            continue
        distinct = {str(row.get(column)) for row in rows}
        if 1 < len(distinct) < len(rows):
            return column
    return None


def _overview(rows: list[dict[str, Any]], labels: list[str]) -> str:
    parts = [f"{len(rows)} row{'s' if len(rows) != 1 else ''}"]
    for column in labels:
        seen = list(dict.fromkeys(str(r[column]) for r in rows if r.get(column) not in (None, "")))
        if not seen:
            continue
        listed = ", ".join(seen[:_MAX_LISTED_VALUES])
        more = len(seen) - _MAX_LISTED_VALUES
        parts.append(f"{_label(column)}: {listed}" + (f" and {more} more" if more > 0 else ""))
    return "; ".join(parts) + "."


def _column_line(rows: list[dict[str, Any]], labels: list[str], column: str) -> str:
    pairs = [(v, i) for i, r in enumerate(rows) if (v := _number(r.get(column))) is not None]
    values = [v for v, _ in pairs]
    low = min(pairs, key=lambda p: p[0])
    high = max(pairs, key=lambda p: p[0])
    parts = [] if _AVERAGED.search(column) else [f"total {_fmt(sum(values))}"]
    parts.append(f"average {_fmt(sum(values) / len(values))}")
    parts.append(f"min {_fmt(low[0])} ({_row_name(rows[low[1]], labels, low[1])})")
    parts.append(f"max {_fmt(high[0])} ({_row_name(rows[high[1]], labels, high[1])})")
    name = _label(column)
    return f"{name[:1].upper()}{name[1:]}: " + "; ".join(parts) + "."


def _group_figure(members: list[dict[str, Any]], column: str) -> str | None:
    values = [v for r in members if (v := _number(r.get(column))) is not None]
    if not values:
        return None
    if _AVERAGED.search(column):
        return f"{_label(column)} {_fmt(sum(values) / len(values))} avg"
    return f"{_label(column)} {_fmt(sum(values))}"


def _by_group(rows: list[dict[str, Any]], group: str, numeric: list[str]) -> str:
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(str(row.get(group)), []).append(row)
    parts = []
    for name, members in groups.items():
        figures = [f for c in numeric if (f := _group_figure(members, c)) is not None]
        parts.append(f"{name} ({len(members)} rows) {', '.join(figures)}")
    return f"By {_label(group)}: " + "; ".join(parts) + "."


def summarize_rows(rows: list[dict[str, Any]], max_rows: int) -> str:
    """An overview line, one line per numeric column, totals by an obvious group column (such
    as region or month) if there is one, then one sentence per row (the first ``max_rows``).

    Columns named like rates (rate, ratio, share, margin, ...) are averaged, never totalled.
    """
    if not rows:
        return "No rows."
    labels, numeric = _columns(rows)
    lines = [_overview(rows, labels)]
    lines += [_column_line(rows, labels, c) for c in numeric]
    group = _group_column(rows, labels)
    if group is not None and numeric:
        lines.append(_by_group(rows, group, numeric))
    lines += [_row_sentence(r, labels, numeric, i) for i, r in enumerate(rows[:max_rows])]
    if len(rows) > max_rows:
        lines.append(f"… and {len(rows) - max_rows} more rows.")
    return "\n".join(lines)
