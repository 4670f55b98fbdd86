# Runnel build. `make` builds the broker; `make unit` runs the C unit tests
# (plain and under ASan+UBSan); tools/test.sh runs the whole suite.
CC      ?= cc
CLANG   ?= clang
WARN    = -Wall -Wextra -Werror -Wno-unused-parameter -Wno-format-truncation -Wstrict-prototypes -Wmissing-prototypes
CFLAGS_COMMON = -std=c11 -D_GNU_SOURCE -g -Isrc $(WARN)
CFLAGS  ?= -O2
LIBS    = -lz -llz4 -lzstd -lsnappy -lzookeeper_mt -lpthread -lm
SAN     = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

LIB_SRC  = $(filter-out src/server/main.c, $(wildcard src/common/*.c src/protocol/*.c \
             src/storage/*.c src/cluster/*.c src/net/*.c src/server/*.c src/group/*.c src/txn/*.c))
UNIT_SRC = $(wildcard tests/unit/test_*.c)

B  = build
BA = build/asan

LIB_OBJ   = $(LIB_SRC:%.c=$(B)/obj/%.o)
LIB_OBJ_A = $(LIB_SRC:%.c=$(BA)/obj/%.o)
UNIT_BIN   = $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
UNIT_BIN_A = $(UNIT_SRC:tests/unit/%.c=$(BA)/tests/%)

.PHONY: all unit unit-plain unit-asan fuzz bench clean
# The runnel command-line tool, on librdkafka.
CLI_SRC = $(wildcard src/cli/*.c)
all: $(B)/runnel-server $(if $(CLI_SRC),$(B)/runnel)

$(B)/runnel: $(CLI_SRC:%.c=$(B)/obj/%.o) $(B)/librunnel.a
	$(CC) $(CFLAGS) -o $@ $^ -lrdkafka $(LIBS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(CFLAGS) -MMD -MP -c $< -o $@

$(BA)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -MMD -MP -c $< -o $@

$(B)/librunnel.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BA)/librunnel.a: $(LIB_OBJ_A)
	@rm -f $@
	ar rcs $@ $^

$(B)/runnel-server: $(B)/obj/src/server/main.o $(B)/librunnel.a
	$(CC) $(CFLAGS) -o $@ $^ $(LIBS)

# The broker under ASan+UBSan, for running the integration suite against it.
$(BA)/runnel-server: $(BA)/obj/src/server/main.o $(BA)/librunnel.a
	$(CC) $(SAN) -o $@ $^ $(LIBS)

$(B)/tests/%: tests/unit/%.c tests/unit/test.h $(B)/librunnel.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) $(CFLAGS) -Itests/unit -o $@ $< $(B)/librunnel.a $(LIBS)

$(BA)/tests/%: tests/unit/%.c tests/unit/test.h $(BA)/librunnel.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_COMMON) -O1 $(SAN) -Itests/unit -o $@ $< $(BA)/librunnel.a $(LIBS)

unit-plain: $(UNIT_BIN)
	@tools/run-unit.sh $(UNIT_BIN)

unit-asan: $(UNIT_BIN_A)
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 tools/run-unit.sh $(UNIT_BIN_A)

unit: unit-plain unit-asan

# libFuzzer target for the request decoder; FUZZ_SECONDS bounds the run.
FUZZ_SECONDS ?= 60
$(B)/fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	$(CLANG) $(CFLAGS_COMMON) -Wno-unknown-warning-option -O1 -fsanitize=fuzzer,address,undefined -o $@ $< $(LIB_SRC) $(LIBS)

fuzz: $(patsubst tests/fuzz/%.c,$(B)/fuzz/%,$(wildcard tests/fuzz/fuzz_*.c))
	@for f in $^; do \
	  mkdir -p $(B)/fuzz/corpus-$$(basename $$f); \
	  echo "fuzz: $$f for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $(B)/fuzz/corpus-$$(basename $$f) \
	    tests/fuzz/seeds 2>$(B)/fuzz/$$(basename $$f).log || { tail -50 $(B)/fuzz/$$(basename $$f).log; exit 1; }; \
	  grep -E 'stat::number_of_executed_units' $(B)/fuzz/$$(basename $$f).log; \
	done

# Benchmarks (not tests): see bench/README.md.
bench: all
	bench/run.sh

clean:
	rm -rf $(B)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
