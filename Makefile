# llmk build. `make` builds the libraries, the CLI and the tests; `make test`
# runs the tests; `make install PREFIX=...` installs. CUDA sources are built
# when nvcc is found (force a CPU-only build with `make NVCC=`).

PREFIX    ?= /usr/local
CC        ?= cc
NVCC      ?= $(shell command -v nvcc 2>/dev/null || { test -x /usr/local/cuda/bin/nvcc && echo /usr/local/cuda/bin/nvcc; })
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
BUILD     ?= build

CFLAGS_BASE := -std=c11 -O2 -g -fPIC -fopenmp -ffp-contract=off -Iinclude -Isrc \
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
                -Xcompiler -fPIC,-Wall,-Wextra,-Werror -lineinfo $(NVCC_EXTRA)
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
HDRS      := $(wildcard include/*.h src/*/*.h src/*/*.inc src/cuda/*.cuh)

all: $(BUILD)/libllmk.a $(BUILD)/libllmk.so $(BUILD)/llmk $(TEST_BIN) $(BUILD)/llmk.pc

$(BUILD)/%.o: src/%.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/%.o: src/%.cu $(HDRS)
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -c $< -o $@

$(BUILD)/libllmk.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libllmk.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libllmk.so.0 -o $@ $^ $(LIBS)

$(BUILD)/llmk: tools/llmk.c $(wildcard tools/cli_*.c tools/*.h) tests/ranks.h $(BUILD)/libllmk.a
	$(CC) $(ALL_CFLAGS) -Itools $< $(wildcard tools/cli_*.c) -o $@ $(BUILD)/libllmk.a $(LIBS)

$(BUILD)/tests/%: tests/%.c $(wildcard tests/*.h) $(BUILD)/libllmk.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests $< -o $@ $(BUILD)/libllmk.a $(LIBS)

# The exhaustive FP8 encoder check compares against cuda_fp8.h's host code (C++).
$(BUILD)/tests/fp8_exhaustive: tests/fp8_exhaustive.cpp src/fp8/fp8.h tests/harness.h
	@mkdir -p $(dir $@)
	g++ -std=c++17 -O2 -fopenmp -Wall -Wextra -Werror -Iinclude -Isrc -Itests \
	    $(if $(strip $(NVCC)),-DLLMK_HAVE_CUDA_FP8=1 -I$(CUDA_HOME)/include) $< -o $@

$(BUILD)/llmk.pc: Makefile
	@mkdir -p $(BUILD)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: llmk\nDescription: FP8 inference kernels for NVIDIA Hopper\nVersion: 0.1.0\nLibs: -L$${libdir} -lllmk\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	    '$(PREFIX)' '$(LIBS)' > $@

test: all $(BUILD)/tests/fp8_exhaustive
	@sh tests/run_all.sh $(BUILD)
	@sh tests/run_python.sh $(BUILD)

# Kernel labs (bench/lab/*.cu): numbered versions of a kernel, checked and
# timed on the GPU machine (bench/gpu_session.sh lab).
LAB_SRC := $(wildcard bench/lab/*.cu)
lab: $(LAB_SRC:bench/lab/%.cu=$(BUILD)/lab/%)
$(BUILD)/lab/%: bench/lab/%.cu $(HDRS) $(BUILD)/libllmk.a
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) $< -o $@ $(BUILD)/libllmk.a $(CUDA_LIBS) -Xcompiler -fopenmp -ldl

demo: $(BUILD)/llmk
	$(BUILD)/llmk demo

install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/llmk.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libllmk.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libllmk.so $(DESTDIR)$(PREFIX)/lib/libllmk.so.0
	ln -sf libllmk.so.0 $(DESTDIR)$(PREFIX)/lib/libllmk.so
	install -m 755 $(BUILD)/llmk $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/llmk.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

clean:
	rm -rf $(BUILD)

.PHONY: all test demo install clean lab
.SECONDARY:
