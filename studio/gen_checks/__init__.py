"""Label-quality checks for the generation task kind (prompt -> one or more expert responses).

A base class + registry (`base.py`) and one module per group of checks; importing the package registers them.
The entry point and the report are in `studio/generation_quality.py`.
"""

# Registration order is the order the report page lists the checks in.
from studio.gen_checks import duplicates  # noqa: F401, I001
from studio.gen_checks import outliers  # noqa: F401
from studio.gen_checks import pii  # noqa: F401
from studio.gen_checks import disagreement  # noqa: F401
from studio.gen_checks import datalab_check  # noqa: F401
from studio.gen_checks.base import (GENERATION_CHECKS, INPUT_COLUMNS, ISSUE_COLUMNS, CheckResult, EmbedFn,
                                    GenerationCheck, GenerationContext, GenerationQualityConfig,
                                    available_generation_checks, empty_issues, get_generation_check,
                                    register_generation_check)

__all__ = ["GENERATION_CHECKS", "INPUT_COLUMNS", "ISSUE_COLUMNS", "CheckResult", "EmbedFn", "GenerationCheck",
           "GenerationContext", "GenerationQualityConfig", "available_generation_checks", "empty_issues",
           "get_generation_check", "register_generation_check"]
