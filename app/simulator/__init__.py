"""A local simulator of EvoLink's task API, for tests and development. Not EvoLink.

Public surface: `SimulatorConfig`, `create_simulator_app` and `run`; see docs/simulator.md.
"""

from app.simulator.app import create_simulator_app
from app.simulator.config import SimulatorConfig
from app.simulator.server import run

__all__ = ["SimulatorConfig", "create_simulator_app", "run"]
