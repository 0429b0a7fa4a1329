# llmk build. `make` builds the libraries, the CLI and the tests; `make test`
# runs the tests; `make install PREFIX=...` installs. CUDA sources are built
# when nvcc is found (force a CPU-only build with `make NVCC=`).

PREFIX    ?= /usr/local
# The version lives in include/llmk.h alone.
VERSION_PART = $(shell sed -n 's/^\#define LLMK_VERSION_$(1) \([0-9]*\)$$/\1/p' include/llmk.h)
VERSION   := $(call VERSION_PART,MAJOR).$(call VERSION_PART,MINOR).$(call VERSION_PART,PATCH)
# While the major version is 0 each minor version may change the ABI.
SONAME    := libllmk.so.$(if $(filter 0,$(call VERSION_PART,MAJOR)),0.$(call VERSION_PART,MINOR),$(call VERSION_PART,MAJOR))
CC        ?= cc
NVCC      ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
BUILD     ?= build

# Only LLMK_API functions are exported (-fvisibility=hidden for the rest);
# -MMD -MP: each object depends on the headers it includes, and no others.
CFLAGS_BASE := -std=c11 -O2 -g -fPIC -fopenmp -ffp-contract=off -fvisibility=hidden -Iinclude -Isrc \
               -Wall -Wextra -Werror -D_GNU_SOURCE
CFLAGS   ?=
ALL_CFLAGS := $(CFLAGS_BASE) $(CFLAGS)
LDLIBS_BASE := -fopenmp -lm -lpthread -ldl

CORE_SRC := $(wildcard src/core/*.c) $(wildcard src/cpu/*.c) $(wildcard src/cuda/*.c)
CORE_SRC := $(filter-out src/core/cuda_stub.c,$(CORE_SRC))

ifneq ($(strip $(NVCC)),)
  CUDA_SRC   := $(wildcard src/cuda/*.cu)
  CUDA_OBJ   := $(CUDA_SRC:src/%.cu=$(BUILD)/%.o)
  NVCCFLAGS  := -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -Iinclude -Isrc \
                -Xptxas --warn-on-spills,--warning-as-error --Werror all-warnings \
                -Xcompiler -fPIC,-fvisibility=hidden,-Wall,-Wextra,-Werror -lineinfo -MMD -MP $(NVCC_EXTRA)
  CUDA_LIBS  := -L$(CUDA_HOME)/lib64 -lcublasLt -lcudart_static -lrt -lstdc++
  ALL_CFLAGS += -DLLMK_WITH_CUDA=1 -I$(CUDA_HOME)/include
  STUB_OBJ   :=
else
  CUDA_OBJ   :=
  CUDA_LIBS  :=
  STUB_OBJ   := $(BUILD)/core/cuda_stub.o
endif

CORE_OBJ := $(CORE_SRC:src/%.c=$(BUILD)/%.o) $(STUB_OBJ)
LIB_OBJ  := $(CORE_OBJ) $(CUDA_OBJ)
LIBS     := $(CUDA_LIBS) $(LDLIBS_BASE)

TEST_SRC  := $(wildcard tests/test_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
# Headers for the rules whose dependencies are not generated (labs).
HDRS      := $(wildcard include/*.h src/*/*.h src/*/*.inc src/*/*.def src/cuda/*.cuh)

all: $(BUILD)/libllmk.a $(BUILD)/libllmk.so $(BUILD)/llmk $(TEST_BIN) $(if $(strip $(NVCC)),$(BUILD)/fit_gemm_model)

$(BUILD)/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/%.o: src/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

-include $(LIB_OBJ:.o=.d)

$(BUILD)/libllmk.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# --exclude-libs keeps the static CUDA runtime's symbols out of the export
# table; the version script is a second guard that only llmk_ names leave.
$(BUILD)/libllmk.so: $(LIB_OBJ) src/exports.map
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,--exclude-libs,ALL -Wl,--version-script,src/exports.map \
	    -o $@ $(LIB_OBJ) $(LIBS)

# The CLI and the harness see the public header only (no -Isrc).
TOOL_CFLAGS := $(filter-out -Isrc,$(ALL_CFLAGS))
TOOL_SRC := $(wildcard tools/cli_*.c) tools/allreduce_fit.c $(wildcard tools/opcheck/*.c)
$(BUILD)/llmk: tools/llmk.c $(TOOL_SRC) $(wildcard tools/*.h) $(BUILD)/libllmk.a
	$(CC) $(TOOL_CFLAGS) -Itools $< $(TOOL_SRC) -o $@ $(BUILD)/libllmk.a $(LIBS)

# The op-check harness (tools/opcheck: public API only), an archive the
# tests link.
OPCHECK_OBJ := $(patsubst tools/%.c,$(BUILD)/tools/%.o,$(wildcard tools/opcheck/*.c))
$(BUILD)/tools/opcheck/%.o: tools/opcheck/%.c
	@mkdir -p $(dir $@)
	$(CC) $(TOOL_CFLAGS) -MMD -MP -c $< -o $@
-include $(OPCHECK_OBJ:.o=.d)
$(BUILD)/opcheck.a: $(OPCHECK_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Tests may reach internals (-Isrc) and the tools' shared parts (-Itools:
# the forked ranks of tools/ranks.h, the all-reduce fit, opcheck/opcheck.h).
$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h tools/*.h tools/opcheck/*.h) $(BUILD)/opcheck.a $(BUILD)/libllmk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Itools $< -o $@ $(BUILD)/opcheck.a $(BUILD)/libllmk.a $(LIBS)

$(BUILD)/tests/test_allreduce: tests/test_allreduce.c tools/allreduce_fit.c $(wildcard tests/*.h tools/*.h) $(BUILD)/libllmk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests -Itools $< tools/allreduce_fit.c -o $@ $(BUILD)/libllmk.a $(LIBS)

# The cost model's fit (a developer tool on the CPU: it reaches the
# library's internals, so it is built like a test; CUDA builds only).
$(BUILD)/fit_gemm_model: tools/fit_gemm_model.c $(BUILD)/libllmk.a
	$(CC) $(ALL_CFLAGS) $< -o $@ $(BUILD)/libllmk.a $(LIBS)

# The exhaustive FP8 encoder check compares against cuda_fp8.h's host code (C++).
$(BUILD)/tests/fp8_exhaustive: tests/fp8_exhaustive.cpp src/fp8/fp8.h tests/harness.h
	@mkdir -p $(dir $@)
	g++ -std=c++17 -O2 -fopenmp -Wall -Wextra -Werror -Iinclude -Isrc -Itests \
	    $(if $(strip $(NVCC)),-DLLMK_HAVE_CUDA_FP8=1 -I$(CUDA_HOME)/include) $< -o $@


test: all $(BUILD)/tests/fp8_exhaustive
	@sh tests/check_exports.sh $(BUILD)
	@sh tests/check_install.sh $(BUILD) NVCC="$(NVCC)"
	@sh tests/check_cli.sh $(BUILD)
	@sh tests/check_bench_scripts.sh
	@sh tests/check_fit_model.sh $(BUILD)
	@sh tests/run_all.sh $(BUILD)
	@sh tests/run_python.sh $(BUILD)

# Kernel labs (bench/lab/*.cu): numbered versions of a kernel, checked and
# timed on the GPU machine (bench/gpu_run.sh lab).
LAB_SRC := $(wildcard bench/lab/*.cu)
lab: $(LAB_SRC:bench/lab/%.cu=$(BUILD)/lab/%)
$(BUILD)/lab/%: bench/lab/%.cu $(HDRS) $(BUILD)/libllmk.a
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $< -o $@ $(BUILD)/libllmk.a $(CUDA_LIBS) -Xcompiler -fopenmp -ldl

# Without a visible GPU the demo runs the CPU backend: it builds CPU-only
# (seconds, instead of minutes of kernels for a GPU that is not there).
demo:
	@if [ -n "$(NVCC)" ] && [ -e /dev/nvidiactl ]; then \
	  $(MAKE) --no-print-directory $(BUILD)/llmk && $(BUILD)/llmk demo; \
	else \
	  echo "make demo: no GPU visible, so the demo runs the CPU backend: building it CPU-only in build-cpu/"; \
	  $(MAKE) --no-print-directory NVCC= BUILD=build-cpu build-cpu/llmk && build-cpu/llmk demo; \
	fi

# llmk.pc is written here, from this PREFIX: the rpath in its Libs lets a
# program linked with `pkg-config --libs llmk` find libllmk.so at run time.
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/llmk.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libllmk.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libllmk.so $(DESTDIR)$(PREFIX)/lib/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(PREFIX)/lib/libllmk.so
	install -m 755 $(BUILD)/llmk $(DESTDIR)$(PREFIX)/bin/
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: llmk\nDescription: FP8 inference kernels for NVIDIA Hopper\nVersion: %s\nLibs: -L$${libdir} -Wl,-rpath,$${libdir} -lllmk\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	    '$(PREFIX)' '$(VERSION)' '$(LIBS)' > $(DESTDIR)$(PREFIX)/lib/pkgconfig/llmk.pc
	@echo "installed llmk $(VERSION) in $(PREFIX): compile with \`pkg-config --cflags --libs llmk\` (PKG_CONFIG_PATH=$(PREFIX)/lib/pkgconfig); its libs carry an rpath to $(PREFIX)/lib (for a system prefix, run ldconfig instead)"

clean:
	rm -rf $(BUILD)

.PHONY: all test demo install clean lab
.SECONDARY:
