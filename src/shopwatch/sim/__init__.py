"""Shop traffic simulator: benign traffic, attack campaigns and look-alikes with ground truth.

Every attack kind has a loud and a low-and-slow variant; their parameters are drawn per
seed from the ranges in :data:`RANGES` (documented in ``docs/simulator.md``). Deterministic
for a seed, in event time. :func:`simulate` writes a run to files,
:class:`LiveFeed` produces lines step by step for demos, :func:`write_access_log` makes large
access logs fast for benchmarks.
"""

from shopwatch.sim.campaigns import KINDS, VARIANTS, Campaign, CampaignKind
from shopwatch.sim.engine import (
    DEFAULT_START,
    FILES,
    LiveFeed,
    PlannedCampaign,
    SimulationResult,
    Simulator,
    plan_campaigns,
    simulate,
)
from shopwatch.sim.fast import write_access_log
from shopwatch.sim.ranges import RANGES, Range

__all__ = [
    "DEFAULT_START",
    "FILES",
    "KINDS",
    "RANGES",
    "VARIANTS",
    "Campaign",
    "CampaignKind",
    "LiveFeed",
    "PlannedCampaign",
    "Range",
    "SimulationResult",
    "Simulator",
    "plan_campaigns",
    "simulate",
    "write_access_log",
]
