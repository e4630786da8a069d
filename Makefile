# Every target creates .venv when missing: after a clone, `make demo` and `make test` are all you need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench deb clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[train,tflite,demo,hub,sparkplug,dev]'
	# pysparkplug pins paho-mqtt<2 for its own client, which the agent does not use (aiomqtt
	# needs paho-mqtt 2): its protobuf schema and payload classes need only protobuf
	$(BIN)/pip install --quiet --no-deps 'pysparkplug==0.6.1'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/edge-agent demo --out demo-out

lint: $(STAMP)
	$(BIN)/ruff check agent hub tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 tests

bench: $(STAMP)
	$(BIN)/python -m bench

# factory-edge-agent_<version>_<arch>.deb in dist/ (needs dpkg-deb and Debian's python3-venv)
deb:
	bash packaging/build-deb.sh dist

clean:
	rm -rf $(VENV) demo-out .pytest_cache .mypy_cache .ruff_cache
