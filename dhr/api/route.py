"""A resolved request: which interaction runs and whether it writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dhr.api.message import FhirRequest, FhirResponse
from dhr.context import RequestContext

Handler = Callable[[RequestContext, FhirRequest], FhirResponse]


@dataclass(frozen=True)
class Route:
    name: str
    run: Handler
    write: bool
    bundle: bool = False
    single_statement: bool = False  # runs exactly one SELECT: no transaction needed
