# clora — a thin wrapper over CMake. `make demo` and `make test` work from a
# fresh clone on Debian 12: they install missing packages when run as root
# (otherwise they print the apt-get line to run), configure, build and run.

BUILD_DIR ?= build
BUILD_TYPE ?= Release
PREFIX ?= /usr/local
MAKEFLAGS += --no-print-directory
JOBS ?= $(shell nproc 2>/dev/null || echo 2)

# Debian packages needed to build and test.
PACKAGES = build-essential cmake pkg-config \
           ocl-icd-opencl-dev opencl-headers pocl-opencl-icd \
           libclblast-dev libcmocka-dev libjansson-dev oclgrind

CMAKE_FLAGS = -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DCLORA_WERROR=ON

.PHONY: all deps configure build demo test install clean

all: build

deps:
	@if ! command -v dpkg-query >/dev/null 2>&1; then \
	  echo "clora: not a Debian system; make sure these are installed: $(PACKAGES)"; \
	else \
	  missing=""; \
	  for p in $(PACKAGES); do \
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

configure: deps
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

demo: build
	$(BUILD_DIR)/tools/clora demo

test: build
	cd $(BUILD_DIR) && ctest --output-on-failure

install: build
	cmake --install $(BUILD_DIR) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD_DIR)
