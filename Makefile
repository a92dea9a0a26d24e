# SPDX-License-Identifier: MIT
# libsdflow — plain GNU make.
#   make              build lib/libsdflow.so.X.Y.Z (+ .so.0, .so) and lib/libsdflow.a
#   make check        unit tests (Check), ABI list, examples (C and C++), install test, Python binding
#   make rust-test    the Rust crates (bindings/rust): generated raw layer up to date, cargo test --offline
#   make demo         SD flow on two moons: samples.csv, samples.svg
#   make bench        JSON lines, one per workload, with this machine's bound and ratio
#   make bench-torch  the PyTorch peers' JSON lines (after make bench)
#   make asan         the test suite under AddressSanitizer + UBSan
#   make fuzz         libFuzzer on the model-file and checkpoint loaders for FUZZ_SECONDS (default 60) seconds
#   make docs         HTML (build/docs/html) and man3 pages (build/docs/man/man3) from the headers
#   make deb          Debian packages in build/deb (clean copy, dpkg-buildpackage, lintian)
#   make install / uninstall   honour PREFIX, DESTDIR, LIBDIR, INCLUDEDIR, MANDIR, DOCDIR
# Packagers: CPPFLAGS, CFLAGS and LDFLAGS are appended to the project's flags
# (the per-file -O3 of the hot loops, KERNEL_OPTFLAGS and MIXTURE_OPTFLAGS,
# comes after them), WERROR=0 drops -Werror, LIBDIR=/usr/lib/$(DEB_HOST_MULTIARCH)
# gives a multiarch layout, INSTALL_DOCS=0 skips the docs. See docs/packaging.md.

VERSION_PART = $(shell sed -n 's/^\#define SDFLOW_VERSION_$(1) \([0-9]*\).*/\1/p' include/sdflow/version.h)
VERSION := $(call VERSION_PART,MAJOR).$(call VERSION_PART,MINOR).$(call VERSION_PART,PATCH)
SOMAJOR := $(call VERSION_PART,MAJOR)

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
DOCDIR ?= $(PREFIX)/share/doc/libsdflow
MANDIR ?= $(PREFIX)/share/man
INSTALL_DOCS ?= 1

BUILD ?= build
LIBOUT ?= lib
PYTHON ?= /usr/bin/python3

PUBLIC_TARGETS = all lib layers internal-test learn-test check demo bench bench-torch examples install uninstall install-test asan valgrind abi-check abi-baseline abi-update abi-symbols docs unit-test python-test mlp-torch-test mpi-test examples-run spdx-check deb deb-symbols fuzz fuzz-seeds io-python-test api-check api-update rust-test real-data

ifeq ($(SDFLOW_DEPS_OK),)
# First pass: make sure the build dependencies exist, then run the real target.
.PHONY: $(PUBLIC_TARGETS) clean
$(filter-out clean uninstall,$(PUBLIC_TARGETS)):
	@sh mk/deps.sh $@
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 $@
uninstall:
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 $@
clean:
	rm -rf build lib/libsdflow.* lib/sdflow.pc samples.csv samples.svg
else

CC ?= cc
OPTFLAGS ?= -O2 -g
# Per-file optimization the hot loops need; applied after CFLAGS so that a
# distro's (or a user's) -O level does not undo it.
# The kernel sums' hot loops need the vectorizer and FMA contraction (no -ffast-math: NaN checks stay valid).
KERNEL_OPTFLAGS ?= -O3 -ffp-contract=fast -fno-trapping-math
# mixture rows: the restrict-qualified axpy products vectorize at -O3 (GCC -O2 leaves them scalar)
MIXTURE_OPTFLAGS ?= -O3
# MLP SiLU rows: -ffast-math lets GCC call glibc's vector exp (src/nn/mlp_act.c has no NaN checks)
MLP_ACT_OPTFLAGS ?= -O3 -ffast-math
# MLP passes: the elementwise adjoint/tangent rows between the GEMMs vectorize at -O3 (no fast-math:
# strict IEEE, the same bits as -O2 up to the order-preserving vectorization GCC does without it)
MLP_NET_OPTFLAGS ?= -O3
# MLP layer products (src/nn/mlp_gemm.c): the register tiles need -O2's scalar replacement to live in
# registers; at -O1 (the ASan build) they went to the stack, and the sanitized unit tests ran 3x longer
MLP_GEMM_OPTFLAGS ?= -O2
# Adam, EMA and the clipping norm: elementwise loops over every parameter; -fno-math-errno lets sqrt
# vectorize (IEEE sqrt, the same bits; errno is never read), -O3 the 8-lane sum of squares
ADAM_OPTFLAGS ?= -O3 -fno-math-errno
WERROR ?= 1
# pkg-config name of the BLAS (also written to sdflow.pc as Requires.private).
BLAS_PC ?= openblas
BLAS_CFLAGS := $(shell pkg-config --cflags $(BLAS_PC))
BLAS_LIBS := $(shell pkg-config --libs $(BLAS_PC))
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null)
LIBS_PRIVATE = -lgomp -lm

WARN = -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CXXWARN = -Wall -Wextra $(if $(filter 1,$(WERROR)),-Werror) -Wshadow
APP_CXXFLAGS = $(OPTFLAGS) $(CXXWARN) $(SANITIZE) $(CPPFLAGS) $(CXXFLAGS) -Iinclude
SDF_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L $(OPTFLAGS) $(WARN) $(SANITIZE) -fopenmp $(CPPFLAGS) $(CFLAGS)
LIB_CFLAGS = $(SDF_CFLAGS) -fPIC -fvisibility=hidden -Iinclude $(patsubst %,-I%,$(wildcard src/*/)) $(BLAS_CFLAGS)
APP_CFLAGS = $(SDF_CFLAGS) -Iinclude

SRC := $(sort $(wildcard src/*/*.c))
OBJ := $(patsubst src/%.c,$(BUILD)/obj/%.o,$(SRC))
DEP := $(OBJ:.o=.d)
SHLIB = $(LIBOUT)/libsdflow.so.$(VERSION)
STLIB = $(LIBOUT)/libsdflow.a
SOFLAGS = -shared -Wl,-soname,libsdflow.so.$(SOMAJOR) -Wl,--version-script=src/libsdflow.map -Wl,--no-undefined

TEST_SRC := $(sort $(wildcard test/test_*.c))
TEST_BIN = $(BUILD)/test/check_sdflow
# examples/mpi_*.c need MPI (mpicc): built and run by `make mpi-test` only
EXAMPLE_SRC := $(filter-out examples/mpi_%.c,$(sort $(wildcard examples/*.c)))
EXAMPLE_BIN := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))
# C++ examples of include/sdflow.hpp: each built as C++17 (sdflow::span) and C++20 (std::span)
CXX_EXAMPLE_SRC := $(sort $(wildcard examples/*.cpp))
EXAMPLE_BIN += $(foreach s,17 20,$(patsubst examples/%.cpp,$(BUILD)/examples/%_cxx$(s),$(CXX_EXAMPLE_SRC)))
BENCH_SRC := $(sort $(wildcard bench/bench_*.c))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
RPATH = -Wl,-rpath,$(abspath $(LIBOUT))
APP_LIBS = -L$(LIBOUT) -lsdflow $(RPATH) -lm

.PHONY: $(PUBLIC_TARGETS)
all lib: $(SHLIB) $(STLIB) $(LIBOUT)/sdflow.pc

$(BUILD)/obj/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(LIB_CFLAGS) $(FILE_OPTFLAGS) -MMD -MP -c $< -o $@
$(BUILD)/obj/models/kernel.o: FILE_OPTFLAGS = $(KERNEL_OPTFLAGS) -Wno-psabi
$(BUILD)/obj/models/gmm.o: FILE_OPTFLAGS = $(MIXTURE_OPTFLAGS)
$(BUILD)/obj/nn/mlp_act.o: FILE_OPTFLAGS = $(MLP_ACT_OPTFLAGS)
$(BUILD)/obj/nn/mlp_net.o: FILE_OPTFLAGS = $(MLP_NET_OPTFLAGS)
$(BUILD)/obj/nn/mlp_gemm.o: FILE_OPTFLAGS = $(MLP_GEMM_OPTFLAGS)
$(BUILD)/obj/train/adam.o: FILE_OPTFLAGS = $(ADAM_OPTFLAGS)

$(SHLIB): $(OBJ) src/libsdflow.map
	@mkdir -p $(LIBOUT)
	$(CC) $(SANITIZE) -fopenmp $(CFLAGS) $(LDFLAGS) $(SOFLAGS) -o $@ $(OBJ) $(BLAS_LIBS) -lm
	ln -sf libsdflow.so.$(VERSION) $(LIBOUT)/libsdflow.so.$(SOMAJOR)
	ln -sf libsdflow.so.$(SOMAJOR) $(LIBOUT)/libsdflow.so

$(STLIB): $(OBJ)
	@mkdir -p $(LIBOUT)
	rm -f $@
	ar rcs $@ $(OBJ)

# Regenerated on every run: PREFIX/LIBDIR given to `make install` must reach the installed sdflow.pc.
$(LIBOUT)/sdflow.pc: sdflow.pc.in include/sdflow/version.h FORCE
	@mkdir -p $(LIBOUT)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' -e 's|@REQUIRES_PRIVATE@|$(BLAS_PC)|' $< > $@

FORCE:

# ---- tests -------------------------------------------------------------------
$(BUILD)/test/suites.h: $(TEST_SRC)
	@mkdir -p $(dir $@)
	grep -ho '^Suite \*[a-z0-9_]*_suite(void)' $(TEST_SRC) | sed 's/^Suite \*\(.*\)(void)/SUITE(\1)/' > $@

$(TEST_BIN): $(TEST_SRC) test/check_main.c test/testutil.h $(BUILD)/test/suites.h $(SHLIB)
	$(CC) $(APP_CFLAGS) -Wno-missing-prototypes $(CHECK_CFLAGS) -Itest -I$(BUILD)/test $(BLAS_CFLAGS) -o $@ test/check_main.c $(TEST_SRC) \
	    $(LDFLAGS) $(APP_LIBS) $(CHECK_LIBS) $(BLAS_LIBS)

unit-test: $(TEST_BIN)
	@sh mk/run_suites.sh $(TEST_BIN) $(TEST_SRC)

abi-symbols: $(SHLIB)
	@nm -D --defined-only $(SHLIB) | awk '$$2 ~ /^[TDBRiWV]$$/ {print $$3}' | sed 's/@.*//' | sort > $(BUILD)/symbols.txt
	@if diff -u abi/symbols.txt $(BUILD)/symbols.txt; then \
	    echo "abi: $$(wc -l < abi/symbols.txt) exported symbols, all sdflow_*, match abi/symbols.txt"; \
	else echo "abi: exported symbols differ from abi/symbols.txt (update it if the change is intended)"; exit 1; fi
	@if grep -v '^sdflow_[^_]' $(BUILD)/symbols.txt; then echo "abi: non-public symbol exported (only sdflow_* without a second underscore)"; exit 1; fi
	@sh mk/debsymbols.sh --check

abi-update: $(SHLIB)
	nm -D --defined-only $(SHLIB) | awk '$$2 ~ /^[TDBRiWV]$$/ {print $$3}' | sed 's/@.*//' | sort > abi/symbols.txt
	sh mk/debsymbols.sh --fix

# abidiff against the ABI dump of the last release (abi/libsdflow.abi):
# added symbols are fine, incompatible changes fail.
abi-check: $(SHLIB)
	abidw --no-corpus-path --drop-private-types --headers-dir include/sdflow --headers-dir include $(SHLIB) > $(BUILD)/libsdflow.abi
	@abidiff --no-added-syms --headers-dir2 include/sdflow abi/libsdflow.abi $(BUILD)/libsdflow.abi; rc=$$?; \
	if [ $$((rc & 11)) -ne 0 ]; then echo "abi-check: incompatible ABI change (abidiff status $$rc)"; exit 1; fi; \
	echo "abi-check: compatible with abi/libsdflow.abi"

abi-baseline: $(SHLIB)
	abidw --no-corpus-path --drop-private-types --headers-dir include/sdflow --headers-dir include $(SHLIB) \
	    | sed "s|comp-dir-path='[^']*'|comp-dir-path='.'|" > abi/libsdflow.abi

examples: $(EXAMPLE_BIN)
$(BUILD)/examples/%: examples/%.c $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -o $@ $< $(LDFLAGS) $(APP_LIBS)

$(BUILD)/examples/%_cxx17: examples/%.cpp include/sdflow.hpp $(SHLIB)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 $(APP_CXXFLAGS) -o $@ $< $(LDFLAGS) $(APP_LIBS)
$(BUILD)/examples/%_cxx20: examples/%.cpp include/sdflow.hpp $(SHLIB)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++20 $(APP_CXXFLAGS) -o $@ $< $(LDFLAGS) $(APP_LIBS)

examples-run: examples
	@sh test/run_examples.sh $(BUILD)/examples

# MPI examples (docs/mpi.md) under mpirun -np 2, checked against one process;
# skipped with the reason when mpicc or mpirun is missing (Debian: libopenmpi-dev openmpi-bin).
MPICC ?= mpicc
MPIRUN ?= mpirun --allow-run-as-root --oversubscribe
MPI_EXAMPLES := $(patsubst examples/%.c,$(BUILD)/mpi/%,$(sort $(wildcard examples/mpi_*.c)))
$(BUILD)/mpi/%: examples/%.c $(SHLIB)
	@mkdir -p $(dir $@)
	$(MPICC) $(APP_CFLAGS) -o $@ $< $(LDFLAGS) $(APP_LIBS)
mpi-test:
	@if ! command -v $(MPICC) >/dev/null 2>&1 || ! command -v $(firstword $(MPIRUN)) >/dev/null 2>&1; then \
	    echo "mpi-test: skipped, $(MPICC) or $(firstword $(MPIRUN)) not found (apt-get install libopenmpi-dev openmpi-bin)"; \
	else $(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 mpi-run; fi
.PHONY: mpi-run
mpi-run: $(MPI_EXAMPLES)
	OMP_NUM_THREADS=1 $(MPIRUN) -np 2 $(BUILD)/mpi/mpi_sdflow --check 1e-10
	OMP_NUM_THREADS=1 $(MPIRUN) -np 2 $(BUILD)/mpi/mpi_train --check 1e-9
	OMP_NUM_THREADS=1 $(MPIRUN) -np 2 $(BUILD)/mpi/mpi_train --steps 80 --fail-at 50 --check 1e-9
	@# negative control: without the hook the ranks' weights differ, so the check must fail
	@if OMP_NUM_THREADS=1 $(MPIRUN) -np 2 $(BUILD)/mpi/mpi_train --steps 20 --no-hook --check 1e-9 >$(BUILD)/mpi/no_hook.log 2>&1; then \
	    cat $(BUILD)/mpi/no_hook.log; echo "mpi-test: the no-hook control passed the check: the test cannot fail"; exit 1; \
	else grep '^mpi_train' $(BUILD)/mpi/no_hook.log; echo "mpi-test: no-hook control fails the check, as it must"; fi
	@echo "mpi-test: ok"

# One source of truth for the FFI surface (bindings/api/README.md): the
# checked-in API description must equal a fresh one from clang's AST of the
# headers, and every binding manifest must cover every public function.
api-check:
	PYTHONDONTWRITEBYTECODE=1 $(PYTHON) bindings/api/api_check.py --build $(BUILD)
api-update:
	PYTHONDONTWRITEBYTECODE=1 $(PYTHON) bindings/api/gen_api.py -o bindings/api/sdflow_api.json
	PYTHONDONTWRITEBYTECODE=1 $(PYTHON) bindings/julia/gen_julia.py

# Rust crates (bindings/rust, docs/rust.md): the generated raw layer must be
# current with the API description, then cargo test and the GMM example
# against this tree's library (no crates.io: --offline). Not part of make
# check (Debian's cargo is an extra dependency); .ci/run runs it.
CARGO ?= cargo
RUST_ENV = SDFLOW_LIB_DIR=$(abspath $(LIBOUT)) CARGO_TARGET_DIR=$(abspath $(BUILD)/rust)
rust-test: $(SHLIB)
	PYTHONDONTWRITEBYTECODE=1 $(PYTHON) bindings/rust/gen_sys.py --check
	cd bindings/rust && $(RUST_ENV) $(CARGO) test --offline
	cd bindings/rust && $(RUST_ENV) $(CARGO) run --offline --example gmm

# The Python binding's tests (pytest, Debian's python3-pytest). pytest exits 5
# when it collects no test: that is a failure here, not a pass.
python-test: $(SHLIB)
	@SDFLOW_LIBRARY=$(abspath $(SHLIB)) PYTHONDONTWRITEBYTECODE=1 $(PYTHON) -m pytest -q -p no:cacheprovider bindings/python/tests; \
	rc=$$?; if [ $$rc = 5 ]; then echo "python-test: pytest collected no tests"; exit 1; fi; exit $$rc

# Debian packages from a clean copy (build/deb): dpkg-buildpackage, lintian;
# DEB_INSTALL=1 (root, CI) also installs them and builds a consumer.
deb:
	@DEB_NOCHECK=$(DEB_NOCHECK) sh mk/deb.sh $(if $(filter 1,$(DEB_INSTALL)),--install)

deb-symbols:
	sh mk/debsymbols.sh --fix

spdx-check:
	@sh mk/spdx.sh --check
# MLP derivatives against a PyTorch f64 twin (skips with a printed reason without torch)
mlp-torch-test: $(SHLIB)
	SDFLOW_LIBRARY=$(abspath $(SHLIB)) PYTHONDONTWRITEBYTECODE=1 $(PYTHON) test/mlp_torch_check.py

# Learning tests too slow for make check (test/learn_*.c, one program each; docs/training.md).
LEARN_SRC := $(sort $(wildcard test/learn_*.c))
LEARN_BIN := $(patsubst test/%.c,$(BUILD)/test/%,$(LEARN_SRC))
$(BUILD)/test/learn_%: test/learn_%.c $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -o $@ $< $(LDFLAGS) $(APP_LIBS)
learn-test: $(LEARN_BIN)
	@for b in $(LEARN_BIN); do s=$$(date +%s); $$b || exit 1; echo "learn-test: $$b ok, $$(( $$(date +%s) - s )) s wall"; done
# Real data (issue 12): library trainer vs its PyTorch twin on sklearn's wine and
# breast-cancer tables, same split, init and hyperparameters (docs/training.md).
# REAL_DATA_SEEDS / REAL_DATA_STEPS override the seeds (default 0 1 2) and steps.
$(BUILD)/tools/%: tools/%.c $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -o $@ $< $(LDFLAGS) $(APP_LIBS)
REAL_DATA_SEEDS ?= 0 1 2
REAL_DATA_STEPS ?= 2000
real-data: $(BUILD)/tools/dsm_tabular
	SDFLOW_LIBRARY=$(abspath $(SHLIB)) sh tools/real_data.sh $(BUILD) $(PYTHON) "$(REAL_DATA_SEEDS)" $(REAL_DATA_STEPS)
# Model files from Python: numpy alone (json + np.frombuffer) and the PyTorch
# MLP twin's export/import (skips with a printed reason without torch)
io-python-test: $(SHLIB)
	SDFLOW_LIBRARY=$(abspath $(SHLIB)) PYTHONDONTWRITEBYTECODE=1 $(PYTHON) test/io_numpy_check.py
	SDFLOW_LIBRARY=$(abspath $(SHLIB)) PYTHONDONTWRITEBYTECODE=1 $(PYTHON) test/io_torch_check.py

install-test: all
	@sh test/install_test.sh "$(MAKE)"

# Checks of internal functions that are not exported (test/internal/*.c),
# linked against the static library: the closed-form log-SNR inverse against
# the forward map and the log-SNR grids (docs/design.md, "Log-SNR grids"); the clipping
# norm and the non-finite scan of the trainer (optim_check); the MLP's layer-product kernel against a
# long-double reference and the BLAS fallback, with its row invariance (gemm_check).
INTERNAL_SRC := $(sort $(wildcard test/internal/*.c))
INTERNAL_BIN := $(patsubst test/internal/%.c,$(BUILD)/test/internal/%,$(INTERNAL_SRC))
$(BUILD)/test/internal/%: test/internal/%.c $(STLIB) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(SDF_CFLAGS) -Iinclude $(patsubst %,-I%,$(wildcard src/*/)) $(BLAS_CFLAGS) -o $@ $< $(STLIB) $(BLAS_LIBS) -lm
internal-test: $(INTERNAL_BIN)
	@for b in $(INTERNAL_BIN); do $$b || exit 1; done

# No upward include or call and no call circle in src/ (architecture.md §1).
layers: $(SHLIB)
	@sh mk/layers.sh $(BUILD)/obj

check: all
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 layers
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 internal-test
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 spdx-check
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 abi-symbols
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 examples-run
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 api-check
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 python-test
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 mlp-torch-test
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 io-python-test
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 fuzz-seeds
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 install-test
	@$(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 unit-test

# Unit suites under valgrind memcheck, in-process (CK_FORK=no) so errors and
# leaks of the library are seen; any error or definite leak fails. The slow
# statistical suites (sampler, sdflow, metrics) and the threaded
# allocation-failure runs (torture_heavy) are left to the native and ASan
# runs to keep CI within its time budget; torture (every allocation of every
# public entry point failed and retried, single-threaded) takes ~80 s CPU here,
# io (truncation, bit flips, malformed headers) ~20 s of CPU.
VALGRIND_SUITES ?= torture io core process model kernel defects density
# Two suites at a time (each single-threaded under valgrind); each suite's
# output is printed whole when it ends. xargs fails if any suite does.
valgrind: $(TEST_BIN)
	@printf '%s\n' $(VALGRIND_SUITES) | xargs -P $(or $(JOBS),2) -I{} sh -c \
	    'CK_FORK=no OMP_NUM_THREADS=1 valgrind -q --error-exitcode=99 --leak-check=full \
	        --errors-for-leak-kinds=definite --show-leak-kinds=definite $(TEST_BIN) {} > $(BUILD)/valgrind-{}.log 2>&1; \
	     rc=$$?; cat $(BUILD)/valgrind-{}.log; echo "valgrind: suite {} exit $$rc"; [ $$rc = 0 ]' \
	    && echo "valgrind: clean ($(VALGRIND_SUITES))"

# Every suite but the interpolant learning runs (interp_learn: minutes of the
# same trainer and sampler loops that the trainer and interpolant suites
# run under ASan too; ~90 s native, the longest suite by 2x, it set the
# ASan step's wall time). ASAN_SKIP= runs it as well.
ASAN_SKIP ?= interp_learn
asan:
	@SKIP_SUITES="$(ASAN_SKIP)" $(MAKE) --no-print-directory SDFLOW_DEPS_OK=1 BUILD=build/asan LIBOUT=build/asan/lib \
	    SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    OPTFLAGS="-O1 -g" unit-test

# ---- fuzzing -----------------------------------------------------------------
# libFuzzer on the buffer loaders of model files and trainer checkpoints
# (test/fuzz/fuzz_model_load.c): clang with
# ASan + UBSan over the library's sources (without OpenMP: test/fuzz/noomp
# stands in for <omp.h>). Seeds: valid files of every kind, written by
# make_corpus with the normal library at build time; new inputs go to
# $(FUZZ_DIR)/corpus, crashes to $(FUZZ_DIR)/crash-*. FUZZ_SECONDS=N.
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang
FUZZ_DIR = $(BUILD)/fuzz
FUZZ_BIN = $(FUZZ_DIR)/fuzz_model_load
FUZZ_CFLAGS = -std=c11 -D_POSIX_C_SOURCE=200809L -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -Wno-unknown-pragmas -Itest/fuzz/noomp -Iinclude $(patsubst %,-I%,$(wildcard src/*/)) $(BLAS_CFLAGS)
$(FUZZ_BIN): test/fuzz/fuzz_model_load.c $(SRC) $(wildcard src/*/*.h src/*/*.def include/*.h include/sdflow/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ test/fuzz/fuzz_model_load.c $(SRC) $(BLAS_LIBS) -lm
$(FUZZ_DIR)/make_corpus: test/fuzz/make_corpus.c $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -o $@ $< $(LDFLAGS) $(APP_LIBS)
# The seed corpus alone (part of make check, which has no clang): every seed
# must be written and load back (sample_model samples each).
fuzz-seeds: $(FUZZ_DIR)/make_corpus $(BUILD)/examples/sample_model
	rm -rf $(FUZZ_DIR)/seeds && mkdir -p $(FUZZ_DIR)/seeds
	$(FUZZ_DIR)/make_corpus $(FUZZ_DIR)/seeds
	@for f in $(FUZZ_DIR)/seeds/*.safetensors; do \
	    $(BUILD)/examples/sample_model $$f 4 $(FUZZ_DIR)/seed.csv >/dev/null || exit 1; done; \
	echo "fuzz-seeds: $$(ls $(FUZZ_DIR)/seeds | wc -l) seed files written and loaded ($$(ls $(FUZZ_DIR)/seeds/*.ckpt | wc -l) trainer checkpoints)"
fuzz: $(FUZZ_BIN) fuzz-seeds
	mkdir -p $(FUZZ_DIR)/corpus
	cd $(FUZZ_DIR) && ./fuzz_model_load -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -timeout=10 -rss_limit_mb=2048 \
	    -dict=$(abspath test/fuzz/safetensors.dict) -print_final_stats=1 corpus seeds

# ---- demo, bench -------------------------------------------------------------
demo: $(BUILD)/examples/two_moons_sdflow
	$(BUILD)/examples/two_moons_sdflow

$(BUILD)/bench/%: bench/%.c bench/bench_util.h $(SHLIB)
	@mkdir -p $(dir $@)
	$(CC) $(APP_CFLAGS) -Ibench -o $@ $< $(LDFLAGS) $(APP_LIBS)

# The calibration calls OpenBLAS and libmvec itself (-ffast-math only here: glibc vectorizes exp only
# under it; -march=native: the bench runs where it is built).
$(BUILD)/bench/bench_machine: APP_CFLAGS += $(BLAS_CFLAGS) -O3 -ffast-math -march=native
$(BUILD)/bench/bench_machine: APP_LIBS += $(BLAS_LIBS)

# One JSON line per workload on stdout (docs/benchmarks.md). bench_machine runs first and measures
# this machine's DGEMM and vectorized-exp rates at 1 and 2 threads into $(BENCH_MACHINE); every
# other program reads them in the same run (bench_util.h) and prints each workload's flops, exps,
# bound = flops / DGEMM rate + exps / exp rate and ratio = t_med / bound. Calibrating once per run
# (a few seconds) rather than per program keeps all ratios of a run on one set of rates.
# BENCH_FILTER=substring runs the matching workload programs only (the calibration always runs).
# OMP_WAIT_POLICY=PASSIVE (unless set by the caller), as for the PyTorch peers: with libgomp's default
# spin-then-sleep, a thread that finished its share of a parallel loop spins on its core while the other
# runs the serial parts or an OpenBLAS-threaded GEMM (two pools on two cores), and on a shared machine it
# spins against other processes (measured loaded: DSM step min 60 ms spinning, 15 ms passive).
# OMP_WAIT_POLICY=default runs the programs with it unset (libgomp's spin-then-sleep, what a program
# gets that sets nothing): on an idle machine each parallel region then starts and joins in ~1 us
# instead of ~90 us, measured 15-25 % on a DSM step. Every line records the policy ("omp_wait").
BENCH_MACHINE = $(BUILD)/bench/machine.json
bench: $(BENCH_BIN)
	@$(BUILD)/bench/bench_machine | tee $(BENCH_MACHINE).tmp && mv $(BENCH_MACHINE).tmp $(BENCH_MACHINE)
	@pol=$${OMP_WAIT_POLICY:-PASSIVE}; if [ "$$pol" = default ]; then unset OMP_WAIT_POLICY; else export OMP_WAIT_POLICY=$$pol; fi; \
	for b in $(filter-out %/bench_machine,$(BENCH_BIN)); do case "$$b" in *$(BENCH_FILTER)*) \
	    SDFLOW_BENCH_MACHINE=$(BENCH_MACHINE) $$b || exit 1;; esac; done

# The PyTorch peers (bench/torch_*.py: natural PyTorch code, f64 and f32, 2 threads, OMP_WAIT_POLICY=PASSIVE),
# with bounds from the calibration of the last `make bench` (run that first).
# bench/torch_dsm_train.py is a training run, not a bench line: run it by hand (docs/benchmarks.md, "Training twins").
bench-torch:
	@for p in $(filter-out bench/torch_dsm_train.py,$(sort $(wildcard bench/torch_*.py))); do SDFLOW_BENCH_MACHINE=$(BENCH_MACHINE) OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=2 \
	    OPENBLAS_NUM_THREADS=2 PYTHONDONTWRITEBYTECODE=1 $(PYTHON) $$p || exit 1; done

# API reference from the header comments: HTML with README.md and docs/*.md as
# pages, and one man3 page per public header (named sdflow_<header>.h, e.g.
# sdflow_ctx.h(3); sdflow.h(3) for the umbrella header). HAVE_DOT is set:
# Debian's doxygen defaults to YES and prints errors without graphviz.
DOC_HTML = $(BUILD)/docs/html/index.html
DOC_MAN_STAMP = $(BUILD)/docs/man/stamp
DOC_INPUT := $(wildcard include/*.h include/sdflow/*.h docs/*.md) README.md
DOXY_COMMON = 'PROJECT_NAME = libsdflow' 'PROJECT_NUMBER = $(VERSION)' 'RECURSIVE = YES' 'EXTRACT_ALL = YES' \
    'FULL_PATH_NAMES = YES' 'STRIP_FROM_PATH = $(abspath include)' 'HAVE_DOT = NO' 'GENERATE_LATEX = NO' \
    'OUTPUT_DIRECTORY = $(BUILD)/docs' 'QUIET = YES' 'WARN_IF_UNDOCUMENTED = NO'

docs: $(DOC_HTML) $(DOC_MAN_STAMP)
	@echo "docs: $(DOC_HTML), $$(ls $(BUILD)/docs/man/man3 | wc -l) man pages in $(BUILD)/docs/man/man3"

$(DOC_HTML): $(DOC_INPUT)
	@mkdir -p $(BUILD)/docs
	rm -rf $(BUILD)/docs/html
	printf '%s\n' $(DOXY_COMMON) 'INPUT = include README.md docs' 'FILE_PATTERNS = *.h *.md' \
	    'USE_MDFILE_AS_MAINPAGE = README.md' 'SEARCHENGINE = NO' | doxygen -

$(DOC_MAN_STAMP): $(wildcard include/*.h include/sdflow/*.h)
	@mkdir -p $(BUILD)/docs
	rm -rf $(BUILD)/docs/man
	printf '%s\n' $(DOXY_COMMON) 'INPUT = include' 'FILE_PATTERNS = *.h' 'GENERATE_HTML = NO' \
	    'GENERATE_MAN = YES' 'MAN_LINKS = NO' | doxygen -
	sh mk/man.sh $(BUILD)/docs/man/man3
	touch $@

# ---- install -----------------------------------------------------------------
install: all $(if $(filter 1,$(INSTALL_DOCS)),docs)
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/sdflow $(DESTDIR)$(PKGCONFIGDIR)
	install -m 755 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	install -m 644 $(STLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf libsdflow.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsdflow.so.$(SOMAJOR)
	ln -sf libsdflow.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libsdflow.so
	install -m 644 include/sdflow.h include/sdflow.hpp $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 include/sdflow/*.h $(DESTDIR)$(INCLUDEDIR)/sdflow/
	install -m 644 $(LIBOUT)/sdflow.pc $(DESTDIR)$(PKGCONFIGDIR)/
ifeq ($(INSTALL_DOCS),1)
	install -d $(DESTDIR)$(DOCDIR)/html $(DESTDIR)$(MANDIR)/man3
	cp -R $(BUILD)/docs/html/. $(DESTDIR)$(DOCDIR)/html/
	install -m 644 $(BUILD)/docs/man/man3/*.3 $(DESTDIR)$(MANDIR)/man3/
endif
	@# The dynamic loader's cache: without it a program finds no libsdflow.so.0
	@# in /usr/local/lib until someone runs ldconfig.
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null 2>&1; then 	    echo ldconfig; ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libsdflow.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsdflow.so.$(SOMAJOR) \
	      $(DESTDIR)$(LIBDIR)/libsdflow.so $(DESTDIR)$(LIBDIR)/libsdflow.a \
	      $(DESTDIR)$(PKGCONFIGDIR)/sdflow.pc $(DESTDIR)$(INCLUDEDIR)/sdflow.h \
	      $(DESTDIR)$(INCLUDEDIR)/sdflow.hpp
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/sdflow/,$(notdir $(wildcard include/sdflow/*.h)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/sdflow 2>/dev/null
	rm -rf $(DESTDIR)$(DOCDIR)/html
	rm -f $(DESTDIR)$(MANDIR)/man3/sdflow.h.3 $(DESTDIR)$(MANDIR)/man3/sdflow_*.3
	-rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null

-include $(DEP)
endif
