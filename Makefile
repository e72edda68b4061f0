# STORM build. `make` builds build/storm (debug-friendly -O2 -g);
# `make BUILD=asan` the ASan+UBSan build, `make BUILD=release` -O2 + LTO.
# Every C file under src/ except src/cmd/main.c goes into libstorm.a, which the
# binary, the unit tests and the fuzz targets all link: one definition of each
# module, no per-target source lists to keep in sync.

BUILD    ?= debug
CC       ?= cc
PKGS     := libuv jansson libsodium sqlite3 libnats hiredis libpq libcurl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))

WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
BASE     := -std=c17 -D_GNU_SOURCE -Isrc $(WARN) $(PKG_CFLAGS) -MMD -MP

ifeq ($(BUILD),debug)
  OUT    := build
  OPT    := -O2 -g
  LDOPT  :=
else ifeq ($(BUILD),asan)
  OUT    := build/asan
  OPT    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDOPT  := -fsanitize=address,undefined
else ifeq ($(BUILD),release)
  OUT    := build/release
  OPT    := -O2 -flto=auto -DNDEBUG
  LDOPT  := -flto=auto -O2
else ifeq ($(BUILD),fuzz)
  # libFuzzer needs clang; the library is instrumented, the driver links the fuzzer main.
  CC     := clang
  OUT    := build/fuzz
  OPT    := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
  LDOPT  := -fsanitize=fuzzer,address,undefined
else
  $(error BUILD must be debug, asan, release or fuzz)
endif

CFLAGS_ALL := $(BASE) $(OPT) $(CFLAGS)
LIBSRC   := $(filter-out src/cmd/main.c,$(shell find src -name '*.c' | sort))
LIBOBJ   := $(LIBSRC:%.c=$(OUT)/obj/%.o)
MAINOBJ  := $(OUT)/obj/src/cmd/main.o
# storm-load (issue 5): its own program; it links libstorm.a for the shared
# codecs (WebSocket frames, buffers) and never the services.
LOADSRC  := $(sort $(wildcard tools/load/*.c))
LOADOBJ  := $(LOADSRC:%.c=$(OUT)/obj/%.o)
LOADLIB  := $(filter-out $(OUT)/obj/tools/load/main.o,$(LOADOBJ))
UNITSRC  := $(sort $(wildcard test/unit/test_*.c))
UNITBIN  := $(UNITSRC:test/unit/%.c=$(OUT)/test/%)
FUZZSRC  := $(sort $(wildcard test/fuzz/fuzz_*.c))
FUZZBIN  := $(FUZZSRC:test/fuzz/%.c=$(OUT)/fuzz/%)
# Native benchmark drivers (bench/*.c): built by `make bench-build`, which the
# test suite's build step runs so they never rot.
BENCHSRC := $(sort $(wildcard bench/*.c))
BENCHBIN := $(BENCHSRC:bench/%.c=$(OUT)/bench/%)

.PHONY: all fuzz-build unit-build bench-build run test unit check-deps deps fuzz bench clean asan release
all: $(OUT)/storm $(if $(LOADSRC),$(OUT)/storm-load)

$(OUT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(OUT)/libstorm.a: $(LIBOBJ)
	@rm -f $@
	ar rcs $@ $^

$(OUT)/storm: $(MAINOBJ) $(OUT)/libstorm.a
	$(CC) $(OPT) $(LDOPT) -o $@ $^ $(PKG_LIBS) -lm

$(OUT)/storm-load: $(LOADOBJ) $(OUT)/libstorm.a
	$(CC) $(OPT) $(LDOPT) -o $@ $^ $(PKG_LIBS) -lm

$(OUT)/obj/tools/%.o: tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itools -c $< -o $@

# Unit tests of storm-load's own modules (test_load_*.c) also link them.
$(OUT)/test/test_load_%: test/unit/test_load_%.c $(LOADLIB) $(OUT)/libstorm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itools -Itest/unit -o $@ $< $(LOADLIB) $(OUT)/libstorm.a $(PKG_LIBS) $(shell pkg-config --libs cmocka) -lm $(LDOPT)

$(OUT)/test/%: test/unit/%.c $(OUT)/libstorm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itest/unit -o $@ $< $(OUT)/libstorm.a $(PKG_LIBS) $(shell pkg-config --libs cmocka) -lm $(LDOPT)

# Fuzz targets of storm-load's parsers (fuzz_load_*.c) link its modules.
$(OUT)/fuzz/fuzz_load_%: test/fuzz/fuzz_load_%.c $(LOADLIB) $(OUT)/libstorm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Itools -o $@ $< $(LOADLIB) $(OUT)/libstorm.a $(PKG_LIBS) -lm $(LDOPT)

$(OUT)/fuzz/%: test/fuzz/%.c $(OUT)/libstorm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(OUT)/libstorm.a $(PKG_LIBS) -lm $(LDOPT)

fuzz-build: $(FUZZBIN)

$(OUT)/bench/%: bench/%.c $(OUT)/libstorm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(OUT)/libstorm.a $(PKG_LIBS) -lm $(LDOPT)

bench-build: $(BENCHBIN)

unit-build: $(UNITBIN)

# The two commands of the README.
# --dev: a newcomer has no STORM_JWT_SECRET; dev mode keeps a generated one in
# ./data/jwt_secret (docs/auth.md). A given STORM_JWT_SECRET still wins.
run: deps
	$(MAKE) BUILD=release
	./build/release/storm serve --dev

test: deps
	scripts/test-all.sh

deps:
	scripts/deps.sh

unit: $(UNITBIN)
	@scripts/run-unit.sh $(UNITBIN)

fuzz:
	scripts/fuzz.sh $(FUZZ_SECONDS)

bench: deps
	bench/http-vs-nginx.sh
	node bench/compare.js
	node bench/login-storm.js

asan:
	$(MAKE) BUILD=asan
release:
	$(MAKE) BUILD=release

clean:
	rm -rf build

# Test, fuzz and bench programs are linked straight from their .c: their
# .d files sit next to them and name the headers they include.
-include $(LIBOBJ:.o=.d) $(MAINOBJ:.o=.d) $(LOADOBJ:.o=.d) $(UNITBIN:=.d) $(FUZZBIN:=.d) $(BENCHBIN:=.d)
