# Two entry points for a new user: `make demo` runs the whole pipeline offline on the
# built-in demo data set and prints where its report and viewer are; `make test` runs every
# test. Both set up .venv when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup media-deps system-deps demo test bench clean

setup: $(STAMP) media-deps

# Debian's ffmpeg 5.1 (frames equal to the released LLP ones), installed when root and missing;
# elsewhere the imageio-ffmpeg binary is used and the workflow says what that changes.
media-deps:
	bash scripts/install_system_deps.sh ffmpeg

# SLURM (cluster test) and Chromium (report test): installed when root and missing; tests that
# need them skip with the reason where they cannot be installed.
system-deps:
	bash scripts/install_system_deps.sh slurm-wlm munge chromium

# The tested versions (constraints.txt) within pyproject's ranges.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -c constraints.txt -e '.[test]'
	touch $(STAMP)

# Everything (metrics.json, the report's figures, the test split's viewer), then the report; ends
# with the ten numbers and where metrics.json and the two pages are.
demo: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --cores 2 all
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/snakemake --report results/report.html
	@$(BIN)/avvp leaderboard results/metrics.json
	@echo "The numbers: $(CURDIR)/results/metrics.json"
	@echo "Open the report: $(CURDIR)/results/report.html"
	@echo "Open the viewer: $(CURDIR)/results/parsed_test/index.html"
	@echo "In a new shell, enter the environment first: . .venv/bin/activate"

test: setup system-deps
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest -q -rs --durations=15

# Figures for docs/BENCHMARKS.md (not tests: each compares against a baseline side by side).
bench: $(STAMP)
	for script in benchmarks/bench_*.py; do PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python $$script || exit 1; done

clean:
	rm -rf results .snakemake
