# copyscope — see README.md. `make` builds build/copyscope (and
# build/copyscope-mpi where mpicc is installed); `make test` runs
# the tests; `make asan` builds with ASan+UBSan into build-asan and runs them.

BUILD    ?= build
CC       ?= cc
CXX      ?= c++
OPT      ?= -O2 -g
PREFIX   ?= /usr/local
DESTDIR  ?=

CPPFLAGS += -I. -D_GNU_SOURCE -MMD -MP
CFLAGS   += -std=c17 -Wall -Wextra $(OPT) -pthread $(WERROR) $(SANITIZE)
CXXFLAGS += -std=c++17 -Wall -Wextra $(OPT) -pthread $(WERROR) $(SANITIZE)
# OpenCV's headers (index/opencv_shim.cpp), apart from CXXFLAGS
CV_CPPFLAGS = -I/usr/include/opencv4
LDFLAGS  += -pthread $(SANITIZE)
# Debian packages (make deps). FAISS: Debian ships only the C++ static
# library, so index/*.cpp holds our small extern "C" shim over it. OpenCV
# (SIFT and RANSAC for the local features) is reached the same way
# (index/opencv_shim.cpp). python3-numpy: tests/test_demo_model.sh checks the
# report's pixel truth against its own tiled L2 (the tests' only Python need).
LDLIBS   += -lopencv_calib3d -lopencv_features2d -lopencv_flann -lopencv_imgproc -lopencv_core \
            -l:libfaiss.a -lgomp -lopenblas -lpng -ljpeg -lsqlite3 -lcjson -lz -lutf8proc -ldivsufsort -lnettle -larchive -lm

DEB_PKGS = build-essential libopenblas-dev libpng-dev libjpeg62-turbo-dev libsqlite3-dev \
           libcjson-dev zlib1g-dev libutf8proc-dev libdivsufsort-dev libfaiss-dev \
           libxml2-utils nettle-dev libarchive-dev libopencv-features2d-dev libopencv-calib3d-dev \
           libdnnl-dev \
           sqlite3 time python3 python3-numpy python3-pil clang libclang-rt-dev \
           libopenmpi-dev openmpi-bin
# The anchors `make bench` measures beside our figures (FAISS, PyTorch, numpy).
BENCH_PKGS = python3-faiss python3-numpy python3-torch python3-torchvision python3-pil librsvg2-bin

# core/mpi_comm.c goes with the binary, not the library: without -DCS_MPI
# in build/copyscope, with it (mpicc) in build/copyscope-mpi.
LIB_SRC  := $(filter-out core/mpi_comm.c,$(wildcard core/*.c index/*.c pipeline/*.c analyze/*.c reports/*.c))
LIB_CXX  := $(wildcard core/*.cpp index/*.cpp analyze/*.cpp)
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(LIB_CXX:%.cpp=$(BUILD)/%.o)
CLI_OBJ  := $(patsubst %.c,$(BUILD)/%.o,$(wildcard cli/*.c))
MPI_BIN  := $(BUILD)/copyscope-mpi
MPICC    ?= mpicc
# make and make test also build the MPI binary where mpicc is installed (not
# under the sanitizers: Open MPI's own allocations would fail LeakSanitizer),
# so a plain make after a pull leaves no stale build/copyscope-mpi behind
HAVE_MPI := $(if $(SANITIZE),,$(shell command -v $(MPICC) 2>/dev/null))
LIB      := $(BUILD)/libcopyscope.a
BIN      := $(BUILD)/copyscope
TESTS    := $(patsubst tests/%.c,$(BUILD)/tests/%,$(wildcard tests/test_*.c))
BENCHES  := $(patsubst bench/%.c,$(BUILD)/bench/%,$(wildcard bench/bench_*.c))
# C++ objects need the C++ runtime at link time
LINK     := $(if $(LIB_CXX),$(CXX),$(CC))

.SECONDARY:
.PHONY: all mpi test asan bench bench-deps run deps install clean valgrind fuzz demo-model
all: $(BIN) $(if $(HAVE_MPI),$(MPI_BIN))

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

# Plain loops of run-time length left to the vectorizer, which -O2's cheap
# cost model skips: the Winograd transforms (index/winograd.c).
$(BUILD)/index/winograd.o: OPT += -O3

# The AVX-512 products (core/gemm_avx512.c, core/attn_avx512.c): entered only after cpuid says so
# (core/cpu.c), so the binary still runs on AVX2-only machines.
AVX512_FLAGS = -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma
$(BUILD)/core/gemm_avx512.o $(BUILD)/core/attn_avx512.o: CFLAGS += $(AVX512_FLAGS)

# oneDNN (libdnnl-dev): its sgemm takes the fp32 products on AVX-512 CPUs
# (faster than our kernel, measured: docs/BENCHMARKS.md 'AVX-512'); without
# the package the build goes on with our own kernel.
HAVE_DNNL := $(shell test -f /usr/include/dnnl.h && echo 1)
ifeq ($(HAVE_DNNL),1)
$(BUILD)/core/gemm_onednn.o $(BUILD)/core/conv_onednn.o: CPPFLAGS += -DCS_HAVE_DNNL
LDLIBS += -ldnnl
endif

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CV_CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(BUILD)/core/mpi_comm.o $(LIB)
	$(LINK) $(LDFLAGS) $(CLI_OBJ) $(BUILD)/core/mpi_comm.o $(LIB) $(LDLIBS) -o $@

# The MPI binary (docs/SCALE.md): the same objects, core/mpi_comm.c compiled
# by mpicc with -DCS_MPI; linked by the C++ driver with mpicc's link flags.
mpi: $(MPI_BIN)

$(BUILD)/mpi/core/mpi_comm.o: core/mpi_comm.c
	@mkdir -p $(dir $@)
	$(MPICC) $(CPPFLAGS) -DCS_MPI $(CFLAGS) -c $< -o $@

$(MPI_BIN): $(CLI_OBJ) $(BUILD)/mpi/core/mpi_comm.o $(LIB)
	$(LINK) $(LDFLAGS) $(CLI_OBJ) $(BUILD)/mpi/core/mpi_comm.o $(LIB) $(LDLIBS) \
	  $$($(MPICC) --showme:link 2>/dev/null || $(MPICC) -link_info | cut -d' ' -f2-) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(LINK) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	$(LINK) $(LDFLAGS) $< $(LIB) $(LDLIBS) -o $@

test: $(BIN) $(TESTS) $(if $(HAVE_MPI),$(MPI_BIN))
	sh tests/run.sh $(BUILD)

# SANITIZE is appended to CFLAGS, CXXFLAGS and LDFLAGS: setting CFLAGS on the
# command line would replace -std=c17 -g -Wall (reports without line numbers).
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g -fno-omit-frame-pointer" \
	  SANITIZE="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  CS_ASAN=1 test

# The C test binaries under valgrind's memcheck (slow: the SD and calibration
# tests take minutes); any error or definite leak fails the binary.
valgrind: $(BIN) $(TESTS)
	CS_WRAP="valgrind -q --leak-check=full --errors-for-leak-kinds=definite --error-exitcode=99" \
	  sh tests/run.sh $(BUILD)

# Every parser's libFuzzer target (tests/fuzz/run.sh: suite JSON, JSONL,
# tar shards, safetensors, tokenizer) for FUZZ_SECONDS each, with clang
# (apt-get install clang libclang-rt-14-dev). New corpus entries land in
# build-fuzz/corpus-TARGET; crashes in build-fuzz/crash-*.
FUZZ_SECONDS ?= 180
fuzz: $(LIB)
	for t in suite jsonl tar safetensors tokenizer; do \
	  LIB=$(LIB) FUZZ_TMP=$${FUZZ_TMP:-/dev/shm} sh tests/fuzz/run.sh $(FUZZ_SECONDS) build-fuzz $$t || exit 1; \
	done

bench: bench-deps $(BIN) $(BENCHES)
	sh bench/run.sh $(BUILD)

run: deps $(BIN)
	sh scripts/demo.sh $(BUILD)

# Retrains models/demo-memo (scripts/train_demo_model.py; CPU, ~67 min on a loaded 2-core machine,
# not part of CI) on make run's demo data, which a first `make run` fetches.
DEMO_DATA ?= demo/data/twemoji-64
PYTHON    ?= /usr/bin/python3
demo-model:
	@[ -f $(DEMO_DATA)/captions.jsonl ] || { echo "demo-model: $(DEMO_DATA): missing (run 'make run' once to fetch it)"; exit 1; }
	OMP_WAIT_POLICY=PASSIVE $(PYTHON) scripts/train_demo_model.py --data $(DEMO_DATA) --out models/demo-memo \
	  --unet-steps 897 --suite suites/demo-memo.json

# npm fetches make run's demo data (scripts/demo.sh); installed only when no npm
# is there (NodeSource's nodejs bundles npm and conflicts with Debian's).
deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PKGS) && \
	  { command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; }; \
	else \
	  echo "run as root, or: sudo apt-get install -y $(DEB_PKGS)$$(command -v npm >/dev/null || echo ' npm')"; \
	fi

bench-deps:
	@if [ "$$(id -u)" = 0 ]; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_PKGS) || \
	  echo "bench: anchors unavailable (apt-get install $(BENCH_PKGS) failed)"; \
	else \
	  echo "for the bench anchors: sudo apt-get install -y $(BENCH_PKGS)"; \
	fi

install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/copyscope

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(BUILD)/core/mpi_comm.d $(BUILD)/mpi/core/mpi_comm.d $(TESTS:=.d) $(BENCHES:=.d)
