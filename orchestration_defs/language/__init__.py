"""The orchestration language: spec models, YAML loading with positions, templates, checks."""

from orchestration_defs.language.errors import SpecError, SpecErrors
from orchestration_defs.language.library import LoadedDefinition, load_file, load_library
from orchestration_defs.language.models import InputSpec, OrchestrationSpec, RetrySpec, StepSpec

__all__ = [
    "InputSpec",
    "LoadedDefinition",
    "OrchestrationSpec",
    "RetrySpec",
    "SpecError",
    "SpecErrors",
    "StepSpec",
    "load_file",
    "load_library",
]
