# Developer entry points. `make demo` and `make test` do all set-up themselves on a fresh machine.
PYTHON ?= python3
PYTEST_ARGS ?=
CLUSTER_DIR ?= .cache/cluster
## The kubectl plugin's project URL: the krew manifest's homepage, and the base of its archive's download URL
## (PLUGIN_BASE_URL/releases/download/vVERSION/kubectl-hostrefresh.tar.gz). Override it for a fork or a mirror.
PLUGIN_BASE_URL ?= https://github.com/hostrefresh/hostrefresh
DIST ?= dist

.PHONY: setup test-setup system-deps python-deps tools test-tools crds api-docs lint test test-fast faults demo plugin cluster-up cluster-down bench images node-image kind-up kind-down clean

## setup: what `make demo` needs: Debian packages, the Python package with test extras, the Go-built control
## plane, and an older QEMU build unpacked beside the installed one (for VMM-only refreshes).
setup: system-deps python-deps tools

## test-setup: setup, plus what only the tests need: promtool (from Debian's prometheus package), krew (for the
## plugin's install test), and for the kind e2e a Docker engine, the kind tools, the product images and the node
## image. Done here, before the tests, so that no test's time limit ever covers a cold build.
test-setup: setup test-tools

system-deps:
	bash scripts/install-system-deps.sh

python-deps:
	$(PYTHON) -m pip install -q --disable-pip-version-check -e '.[test,testbed,timeline]'

tools:
	$(PYTHON) -m hostrefresh.controlplane build
	$(PYTHON) -m hostrefresh.sim.guest.qemubuilds

test-tools:
	$(PYTHON) -m hostrefresh.controlplane promtool
	$(PYTHON) -m hostrefresh.controlplane krew
	$(PYTHON) -m hostrefresh.controlplane kind-tools
	bash scripts/docker-engine.sh
	bash deploy/images/build.sh
	bash deploy/kind/build-node-image.sh

## crds: regenerate crds/*.yaml from the pydantic models in src/hostrefresh/api (and the chart's copy,
## and docs/api.md, which is written from them).
crds:
	$(PYTHON) -m hostrefresh.api.crd crds
	cp crds/*.yaml charts/hostrefresh/crds/
	$(PYTHON) -m hostrefresh.api.reference docs/api.md

## api-docs: regenerate docs/api.md, the API reference, from the CRDs (and the condition types and reasons).
api-docs:
	$(PYTHON) -m hostrefresh.api.reference docs/api.md

## lint: ruff, mypy (strict, over src, tests and the plugin's build script) and the import-layer contracts.
lint:
	ruff check src tests bench deploy/krew
	ruff format --check src tests bench deploy/krew
	mypy
	mypy deploy/krew/build.py
	lint-imports

## test: everything CI runs: set-up, lint, then the whole suite (unit, integration, e2e, slow ones too).
test: test-setup lint
	$(PYTHON) -m pytest --require-all-tests --durations=40 $(PYTEST_ARGS)

## test-fast: the fast set only (no control plane, no QEMU, nothing slow).
test-fast:
	$(PYTHON) -m pytest -m "not slow and not integration and not qemu and not e2e" $(PYTEST_ARGS)

## faults: the whole fault campaign (make test runs a bounded matrix of it); prints the report and
## records it in bench/results/faults.json. A whole two-host scenario runs longer than the suite's
## 10-minute test limit, hence its own.
faults: test-setup
	$(PYTHON) -m pytest -m faults tests/faults --faults-all --timeout=3600 --faults-report bench/results/faults.json $(PYTEST_ARGS)

## demo: a local demo fleet on an embedded control plane.
demo: setup
	$(PYTHON) -m hostrefresh.demo

cluster-up: python-deps
	@$(PYTHON) -m hostrefresh.controlplane up --dir $(CLUSTER_DIR)

cluster-down:
	@$(PYTHON) -m hostrefresh.controlplane down --dir $(CLUSTER_DIR)

## plugin: the kubectl plugin's krew archive $(DIST)/kubectl-hostrefresh.tar.gz (a Python zip application of
## the plugin, and LICENSE) and its manifest $(DIST)/hostrefresh.yaml, rendered from deploy/krew/hostrefresh.yaml
## with the archive's sha256 (deploy/krew/build.py). Install: kubectl krew install --manifest=... --archive=...
plugin:
	$(PYTHON) deploy/krew/build.py --dist $(DIST) --base-url $(PLUGIN_BASE_URL)

## images: the operator and agent images (deploy/images/) with a Docker engine, installed and started when
## missing; the Debian base is made from Debian's packages when no registry serves it.
images:
	bash scripts/docker-engine.sh
	bash deploy/images/build.sh

## node-image: the kind node image, built offline (deploy/kind/build-node-image.sh): Debian's systemd,
## containerd, runc and CNI plugins, Kubernetes' node binaries and component images built here.
node-image: python-deps
	bash scripts/docker-engine.sh
	$(PYTHON) -m hostrefresh.controlplane build >/dev/null
	bash deploy/kind/build-node-image.sh

## kind-up: a kind cluster (1 control plane, 3 workers) from that node image, the product's images loaded,
## the chart installed (deploy/kind/up.sh); prints the KUBECONFIG line. kind-down deletes it.
kind-up: python-deps
	@bash deploy/kind/up.sh

kind-down:
	@bash deploy/kind/down.sh

bench: setup
	$(PYTHON) bench/l0_calls.py
	$(PYTHON) bench/handover.py
	$(PYTHON) bench/twohost.py
	$(PYTHON) bench/vmm_refresh.py
	$(PYTHON) bench/operator_latency.py

clean:
	rm -rf build .cache .mypy_cache .ruff_cache .pytest_cache l0module/build
