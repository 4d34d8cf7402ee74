"""Metadata-driven landing-zone simulator: Faker patients, encrypted archives, ground truth.

`simulate(catalog, options)` writes archives for every feed in the catalog the way
docs/landing-contract.md lays them out, and a JSON-lines truth file that `read_truth` reads.
"""

from lake_assets.simulate.faults import FAULT_KINDS
from lake_assets.simulate.options import SimulationOptions, SimulationSummary
from lake_assets.simulate.run import simulate
from lake_assets.simulate.truth import TruthRecord, read_truth

__all__ = [
    "FAULT_KINDS",
    "SimulationOptions",
    "SimulationSummary",
    "TruthRecord",
    "read_truth",
    "simulate",
]
