# The two commands: `make demo` and `make test`. Both create or reuse .venv/ (reinstalled when a dependency file
# changes) and check for Java 17+ first.
PYTHON ?= python3
VENV := .venv
DEPS_HASH := $(shell cat pyproject.toml Makefile | sha256sum | cut -c1-16)
STAMP := $(VENV)/.installed-$(DEPS_HASH)
# On the project machines torch 2.13.0 is a CPU build on local disk; elsewhere pip fetches the build for the platform.
TORCH ?= torch==2.13.0

.PHONY: demo test venv java clean

demo: java $(STAMP)
	$(VENV)/bin/curate demo

test: java $(STAMP)
	$(VENV)/bin/python -m pytest -q

venv: $(STAMP)

$(STAMP):
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q "$(TORCH)"
	$(VENV)/bin/python -m pip install -q -e ".[test,lightgbm]"
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

java:
	@java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' || \
	  { echo "curate needs Java 17 or newer for Spark: install it with 'sudo apt-get install -y openjdk-17-jre-headless' (or set JAVA_HOME)"; exit 1; }

clean:
	rm -rf $(VENV) out
