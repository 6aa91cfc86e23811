# Two entry points: `make run` (the main job on the embedded CPU default) and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint lock venv clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# CPU torch first, with pip: the machines carry a local wheel of exactly this version.
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0 uv
	# Everything else from the committed lock, resolved by uv (pip's resolver backtracks for minutes).
	$(BIN)/uv pip install -q --python $(BIN)/python -r requirements.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# The main job: the DVC pipeline on params.yaml (prepare_data -> base_model -> train -> evaluate -> register),
# tracked in a local SQLite MLflow store unless MLFLOW_TRACKING_URI names a server; then the results table.
run: $(STAMP)
	@start=$$(date +%s); \
	export PATH="$(CURDIR)/$(BIN):$$PATH" DVC_NO_ANALYTICS=1 \
	       MLFLOW_TRACKING_URI="$${MLFLOW_TRACKING_URI:-sqlite:///$(CURDIR)/mlruns.db}"; \
	$(BIN)/dvc repro && \
	$(BIN)/spg summarize --show metrics/summary.json --registered runs/register/registered.json && \
	echo "make run: $$(( $$(date +%s) - start )) s wall time (dvc repro; a re-run skips unchanged stages)"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .

# Re-resolve the pins (needs the registries). torch resolves against the local CPU wheel (so no CUDA
# packages get pinned) and is left out of the lock: it is installed first with pip.
lock:
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 \
	  --find-links /opt/wheels --no-emit-package torch -o requirements.lock
	# the images' requirement files: runtime dependencies only, pinned by the lock (docker/README.md)
	$(BIN)/uv pip compile pyproject.toml docker/requirements-cpu.in -c requirements.lock --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 --find-links /opt/wheels --no-emit-package torch \
	  -o docker/requirements-cpu.txt
	$(BIN)/uv pip compile pyproject.toml docker/requirements-cuda.in -c requirements.lock --python-version 3.11 \
	  --python-platform x86_64-manylinux_2_28 -o docker/requirements-cuda.txt

clean:
	rm -rf $(VENV) .pytest_cache
