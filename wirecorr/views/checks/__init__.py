"""Checks: rules a capture or recording must satisfy, for regression tests (docs/checks.md).

A rules file says what a correct run of a program looks like on the wire and in its
syscalls ("no CLOSE_WAIT leak", "every accept4 has its handshake", "no retransmission",
"the client closes first"). The package splits along the three jobs: `rules` parses and
validates a rules file, `evaluation` checks the rules on a finished Session, and `report`
prints the verdicts with their evidence.
"""

from __future__ import annotations

from wirecorr.views.checks.evaluation import COUNTS, Report, Result, Rule, evaluate
from wirecorr.views.checks.report import report_text, timeline, write_report
from wirecorr.views.checks.rules import MAX_RULES_BYTES, RulesError, load_rules, parse_bound, parse_rules

__all__ = [
    "COUNTS",
    "MAX_RULES_BYTES",
    "Report",
    "Result",
    "Rule",
    "RulesError",
    "evaluate",
    "load_rules",
    "parse_bound",
    "parse_rules",
    "report_text",
    "timeline",
    "write_report",
]
