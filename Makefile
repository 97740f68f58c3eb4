# Two commands do everything on a fresh machine with Python 3.11+ and pip:
#   make demo   install (and the serving runtime), generate the demo data, run the demo releases
#   make test   install, lint, check the Dagster definitions (dg check defs), run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The tests' temporary folders (their registries, warehouses, Dagster instances, servers' data)
# on a RAM-backed tmpfs where there is one with room (a full run holds about 1 GB at its peak;
# containers often give /dev/shm 64 MB): the same files, no disk syncs (Dagster's SQLite
# commits once per event). About 10 % off a release-heavy test file on 2 cores, measured A/B.
SHM_FREE_KB := $(shell df -Pk /dev/shm 2>/dev/null | awk 'NR == 2 { print $$4 }')
TEST_TMPDIR := $(shell [ -w /dev/shm ] && [ "$(SHM_FREE_KB)" -ge 4194304 ] 2>/dev/null && echo /dev/shm || echo $${TMPDIR:-/tmp})

# Bytecode caches for the project's own modules and pytest's rewritten tests: every test starts
# Python processes (releases, servers, xdist workers), and with PYTHONDONTWRITEBYTECODE set in
# the shell each one compiled every project module again (about 1 s per process, 4 s of each
# pytest worker's collection, measured on 2 cores; __pycache__ is git-ignored).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test check ui install lint clean bench reliability

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The serving runtime's own environment (ml_release/serving/environment.py) builds beside
	# the project's packages: two pips keep two cores busy (about a minute less than one after
	# the other). If it fails, `ml-release runtime` in `make test` and `make demo` says why.
	$(BIN)/python -m ml_release.serving.environment & runtime=$$!; \
		$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,llm,boosting]'; \
		status=$$?; wait $$runtime || echo "the serving runtime did not build: \`ml-release runtime\` retries and says why"; \
		exit $$status
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ml-release runtime
	$(BIN)/ml-release demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/dg check defs
	$(BIN)/ml-release runtime
	# Every test but the demo tour on four workers, whole files, the longest first
	# (tests/conftest.py): most tests wait on model servers, releases in child processes, the UI
	# or a browser, so four workers keep two cores busy. One OpenMP/BLAS thread per worker: the
	# threads of four workers spinning on two cores would slow them all. Screenshots of the
	# browser test go to reports/browser/ (docs/testing.md).
	TMPDIR=$(TEST_TMPDIR) OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
		$(BIN)/python -m pytest -n 4 \
		--dist loadfile --no-loadscope-reorder -m 'not demo' --junitxml=reports/junit.xml --durations=15
	# Then the demo tour alone: beside the other tests its p99 latency gate says inconclusive (which
	# blocks) for healthy releases, even with those at idle priority, and the tour expects them
	# promoted (docs/testing.md).
	TMPDIR=$(TEST_TMPDIR) $(BIN)/python -m pytest -m demo --junitxml=reports/junit-demo.xml

# The inner loop: lint, the definitions, and the tests that need no server or browser and run
# no more than a few releases (markers in pyproject.toml).
check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/dg check defs
	TMPDIR=$(TEST_TMPDIR) $(BIN)/python -m pytest -n 2 -q \
		-m 'not slow and not demo and not browser and not server'

# The Dagster UI on 127.0.0.1 (no authentication: never expose it without a proxy in front).
# DAGSTER_HOME follows ML_RELEASE_HOME (default: .ml_release/ here): the instance `ml-release` uses.
ui: $(STAMP)
	$(BIN)/python -c 'from ml_release.jobs import ensure_instance; from ml_release.home import dagster_home; ensure_instance(dagster_home())'
	DAGSTER_HOME=$$($(BIN)/python -c 'from ml_release.home import dagster_home; print(dagster_home())') $(BIN)/dg dev --host 127.0.0.1 --port 3000

bench: $(STAMP)
	$(BIN)/python bench/contract.py

# The reliability suite (tests marked `reliability`: faults injected, bad inputs), then
# docs/reliability.md regenerated from the outcomes it recorded (reports/reliability.json).
reliability: $(STAMP)
	$(BIN)/ml-release runtime
	TMPDIR=$(TEST_TMPDIR) $(BIN)/python -m pytest -n 3 --dist loadfile --no-loadscope-reorder -m reliability
	$(BIN)/python -m tests.reliability_report

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .ml_release
