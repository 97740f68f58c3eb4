"""Imported first by the processes that load models, so that skops imports in half the time.

Importing `skops.io` (0.16) looks each of SciPy's special-function ufuncs up in every module
already imported, in import order, until it meets the one that holds it (they have no
`__module__`). With `scipy.special` imported early, each lookup stops within the first few
hundred modules; after Dagster, pandas, SQLAlchemy and pyarrow it went through two thousand.
`import skops.io` after those took 1.3-1.9 s instead of 0.5-0.6 s (2 cores, three runs each).
Importers: the command line for the commands that load models, a model server's launcher,
and the tests' conftest. Importing this module costs about 0.35 s beyond NumPy.
"""

import scipy.special  # noqa: F401
