"""The `ml-release` command line (`ml_release.cli.main`), one module per area of work.

- `release`: validate, run, canary, shadow, coverage;
- `registry`: register, rollback, promote, status, history;
- `tools`: demo-data, gates, runtime, serve; the demo tour is `ml_release.demo.tour`.
"""

from ml_release.cli.main import build_parser, main
from ml_release.cli.tools import SCENARIO_NAMES

__all__ = ["SCENARIO_NAMES", "build_parser", "main"]
