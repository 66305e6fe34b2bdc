"""``triggers``: what starts an orchestration besides a launch; for now, signed webhooks.

A webhook trigger names a source, an optional ``filter`` condition and the run's ``inputs``,
all templated against the webhook: ``body`` (the JSON the sender posted) and ``webhook``
(``id``, ``source``, ``received_at``). Templates are checked when the file loads, like every
other template, and rendered by the webhook sensor for each stored webhook.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, meta
from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestration_defs.language.template_limits import DEFAULT_TEMPLATE_LIMITS, TemplateLimits
from orchestration_defs.language.templates import (
    TemplateError,
    is_template,
    references,
    render,
    truthy,
    walk_strings,
)

TRIGGER_ROOTS = frozenset({"body", "webhook"})
SOURCE = r"^[a-z0-9][a-z0-9_-]*$"
# Parses only, to list a template's free names; rendering uses the sandbox in templates.py.
_names_env = Environment()


def check_trigger_template(text: str) -> None:
    """Refuse a template that does not parse or uses names other than body and webhook.

    Raises:
        ValueError: with a message naming the problem.
    """
    if not is_template(text):
        return
    try:
        references(text)  # the same syntax check and message as every other template
    except TemplateError as exc:
        raise ValueError(str(exc)) from exc
    names = meta.find_undeclared_variables(_names_env.parse(text)) - {"loop"}
    unknown = sorted(names - TRIGGER_ROOTS)
    if unknown:
        raise ValueError(f"unknown name '{unknown[0]}' in trigger template (use body or webhook)")


class WebhookTriggerSpec(BaseModel):
    """Start a run for each webhook from ``source`` that passes ``filter``."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(pattern=SOURCE, max_length=100, description="The webhook source's name.")
    filter: bool | str | None = Field(
        None, description="Templated condition on body and webhook; false ignores the webhook."
    )
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="The run's inputs, templated from body and webhook."
    )

    @field_validator("filter")
    @classmethod
    def _filter_template(cls, value: bool | str | None) -> bool | str | None:
        if isinstance(value, str):
            check_trigger_template(value)
        return value

    @field_validator("inputs")
    @classmethod
    def _input_templates(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path, text in walk_strings(value):
            try:
                check_trigger_template(text)
            except ValueError as exc:
                where = ".".join(str(p) for p in path)
                raise ValueError(f"inputs.{where}: {exc}") from exc
        return value

    def matches(
        self, context: dict[str, Any], limits: TemplateLimits = DEFAULT_TEMPLATE_LIMITS
    ) -> bool:
        """Whether the filter lets this webhook through.

        Raises:
            TemplateError: the filter fails on this body (a missing key, say).
        """
        if self.filter is None:
            return True
        return truthy(render(self.filter, context, field="filter", limits=limits))

    def render_inputs(
        self, context: dict[str, Any], limits: TemplateLimits = DEFAULT_TEMPLATE_LIMITS
    ) -> dict[str, Any]:
        """The run's inputs for this webhook.

        Raises:
            TemplateError: a template fails on this body.
        """
        rendered = render(self.inputs, context, field="inputs", limits=limits)
        assert isinstance(rendered, dict)
        return rendered


class TriggerSpec(BaseModel):
    """One trigger; ``webhook`` is the only kind so far."""

    model_config = ConfigDict(extra="forbid")

    webhook: WebhookTriggerSpec


def webhook_context(body: Any, *, webhook_id: str, source: str, received_at: str) -> dict[str, Any]:
    """The names a trigger's templates see for one webhook."""
    return {
        "body": body,
        "webhook": {"id": webhook_id, "source": source, "received_at": received_at},
    }
