"""Detection: the Detector interface, its kinds, keyed state and the rule content."""

from shopwatch.detect.registry import KINDS, Detector, RuleSpec, build, kind, parse_duration
from shopwatch.detect.state import KeyedState

__all__ = ["KINDS", "Detector", "KeyedState", "RuleSpec", "build", "kind", "parse_duration"]
