# The two commands of the README: `make train` and `make test`.
# Both create ./.venv on first use and install what is missing; nothing is installed by hand.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip

.PHONY: train test install check-install bench clean

train: install
	$(VENV)/bin/qapprox train

# One intra-op thread: small networks on small machines are 10-100x slower with two under load.
# The suite includes the Ray sweep tests, so it also installs the `distributed` extra.
test: $(VENV)/.installed-test
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(PY) -m pytest -q

install: $(VENV)/.installed

# torch: keep an existing install; with no GPU, prefer a CPU wheel already on this machine
# (pip's find-links), else the PyTorch CPU index; with a GPU, the default (CUDA) build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@if $(PY) -c "import torch" 2>/dev/null; then echo "torch already installed"; \
	elif command -v nvidia-smi >/dev/null 2>&1; then $(PIP) install "torch>=2.2,<3"; \
	else $(PIP) install --no-index --no-deps "torch>=2.2,<3" 2>/dev/null \
	  || $(PIP) install "torch>=2.2,<3" --index-url https://download.pytorch.org/whl/cpu \
	       --extra-index-url https://pypi.org/simple; fi
	$(PIP) install -e ".[dev]"
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(PIP) install -e ".[dev,distributed]"
	touch $@

# `pip install .` into a fresh venv: only qapprox lands in site-packages; the installed command trains.
check-install: install
	PYTHON=$(PYTHON) bash .ci/check_install

bench: install
	$(PIP) install -e ".[bench]"
	OMP_NUM_THREADS=1 $(VENV)/bin/qapprox benchmark

clean:
	rm -rf $(VENV) runs build *.egg-info
