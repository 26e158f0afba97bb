"""The agent tree of spec 9.1: a root that routes, five specialists with their tools."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.adk.agents import Agent

from . import instructions
from .pipelines import PipelinesClient
from .tools.actions import ActionTools
from .tools.analytics import AnalyticsTools
from .tools.catalog import CatalogTools
from .tools.lineage import LineageTools
from .tools.operations import OperationsTools

ROOT_NAME = "InterloperAgent"

# name -> (description, instruction, toolbox)
SPECIALISTS: dict[str, tuple[str, str, type[Any]]] = {
    "CatalogAgent": (
        "Discovers sources, asset schemas, fields and destinations; searches and compares schemas.",
        instructions.CATALOG,
        CatalogTools,
    ),
    "LineageAgent": (
        "Answers upstream/downstream, full lineage, impact analysis and cross-source dependency questions.",
        instructions.LINEAGE,
        LineageTools,
    ),
    "OperationsAgent": (
        "Reports run health, failures and their errors, job schedules and health, and backfill progress.",
        instructions.OPERATIONS,
        OperationsTools,
    ),
    "AnalyticsAgent": (
        "Computes run statistics, partition coverage and data freshness.",
        instructions.ANALYTICS,
        AnalyticsTools,
    ),
    "ActionAgent": (
        "Triggers runs and backfills and enables/disables jobs and assets, after the user confirms.",
        instructions.ACTION,
        ActionTools,
    ),
}

ModelFactory = Callable[[str], Any]  # agent name -> ADK model (a BaseLlm or a model name)


def build_root_agent(model_for: ModelFactory, pipelines: PipelinesClient) -> Agent:
    specialists = [
        Agent(
            name=name,
            model=model_for(name),
            description=description,
            instruction=instruction,
            tools=list(toolbox(pipelines).tools()),
        )
        for name, (description, instruction, toolbox) in SPECIALISTS.items()
    ]
    return Agent(
        name=ROOT_NAME,
        model=model_for(ROOT_NAME),
        description="Routes questions about the Interloper platform to the right specialist.",
        instruction=instructions.ROOT,
        sub_agents=specialists,
    )
