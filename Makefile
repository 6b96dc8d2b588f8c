# edgeq: `make demo` and `make test` set up everything they need on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgeq-installed
DIGITS := examples/digits/artifacts
DEVICE ?= qemu-mps2-an386

.PHONY: setup demo test deploy bench toolchain arm-linux browser system-packages clean report-screenshot

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "edgeq: installing into $(VENV) (first run takes a few minutes)"
	@# --no-compile: pip would byte-compile all ~23,000 modules of the dependencies (a minute or two);
	@# Python compiles the modules edgeq imports when it first imports them.
	@{ $(BIN)/pip install --disable-pip-version-check --upgrade pip && \
	   $(BIN)/pip install --disable-pip-version-check --no-compile -e '.[test,examples,torch]'; } > $(VENV)/install.log 2>&1 \
	   || { tail -n 40 $(VENV)/install.log; echo "edgeq: install failed; the whole log is $(VENV)/install.log"; exit 1; }
	@touch $@

# Cross compiler and emulator for the emulated boards; installed when missing and root.
toolchain:
	@bash scripts/ensure-toolchain.sh

# The aarch64 cross compiler, qemu-aarch64, OpenSSH and adb, for phones and Linux boards (docs/phones.md).
arm-linux:
	@bash scripts/ensure-arm-linux.sh

# Chromium, for the browser test of report.html (the demo does not need it).
browser:
	@bash scripts/ensure-browser.sh

$(DIGITS)/digits.keras: examples/digits/train.py | $(STAMP)
	@$(BIN)/python examples/digits/train.py --out $(DIGITS)

demo: setup toolchain $(DIGITS)/digits.keras
	@$(BIN)/edgeq deploy $(DIGITS)/digits.keras --device $(DEVICE) \
		--data $(DIGITS)/calib.npz --val $(DIGITS)/val.npz

# make deploy MODEL=path DEVICE=name [DATA=calib.npz] [VAL=val.npz] [QUANT=int8]
deploy: setup
	@test -n "$(MODEL)" || { echo "usage: make deploy MODEL=... DEVICE=... [DATA=...] [VAL=...] [QUANT=...]"; exit 2; }
	@$(BIN)/edgeq deploy $(MODEL) --device $(DEVICE) $(if $(DATA),--data $(DATA)) \
		$(if $(VAL),--val $(VAL)) $(if $(QUANT),--quant $(QUANT))

# The Python packages (pip) and the system ones install at the same time; the system ones one script
# after another, as apt takes one lock. The tests run in TEST_JOBS processes, a test module in one of them
# (tests/conftest.py groups them).
TEST_JOBS ?= 2
test:
	@$(MAKE) --no-print-directory -j2 setup system-packages
	@$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadscope

system-packages:
	@bash scripts/ensure-toolchain.sh && bash scripts/ensure-arm-linux.sh && bash scripts/ensure-browser.sh

# Every benchmark; device_bench checks issue 10's targets against TFLM + CMSIS-NN (--strict).
bench: setup toolchain arm-linux
	@for b in bench/*.py; do echo "== $$b"; \
	  $(BIN)/python $$b $$(test $$b = bench/device_bench.py && echo --strict) || exit 1; done

# docs/report.png, the README's picture: the digits demo's report.html in headless Chromium.
report-screenshot: setup toolchain browser $(DIGITS)/digits.keras
	@$(BIN)/python scripts/report_screenshot.py --digits $(DIGITS) --device $(DEVICE) --png docs/report.png

clean:
	rm -rf build $(DIGITS)
