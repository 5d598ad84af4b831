"""Quality checks: a base class + registry (`base.py`) and one module per check.

Importing this package registers every built-in check; `available_checks()` lists them for the UI and CLI.
"""

# Registration order is the order the UI lists the checks in.
from studio.checks import label_issues  # noqa: F401, I001
from studio.checks import outliers  # noqa: F401
from studio.checks import duplicates  # noqa: F401
from studio.checks import imbalance  # noqa: F401
from studio.checks.base import (CHECKS, ISSUE_COLUMNS, Check, QualityContext, available_checks, get_check,
                                register_check)
from studio.checks.duplicates import near_duplicate_groups, normalise_text
from studio.checks.neighbours import KnnGraph, knn_graph

__all__ = ["CHECKS", "ISSUE_COLUMNS", "Check", "KnnGraph", "QualityContext", "available_checks", "get_check",
           "knn_graph", "near_duplicate_groups", "normalise_text", "register_check"]
