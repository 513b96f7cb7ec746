/* fuzz_suite.c — libFuzzer target for the prompt-suite parser
 * (pipeline/suite.c, cs_suite_parse): any bytes either parse into a suite
 * whose invariants hold (at least one item, ids valid and unique, every item
 * with its seeds) or fail with a message naming the file. Build and run with
 * tests/fuzz/run.sh (target suite). */
#include <stdlib.h>
#include <string.h>

#include "pipeline/suite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cs_suite s;
    cs_err err = {0};
    if (cs_suite_parse(&s, (const char *)data, size, "fuzz/s.json", &err) == 0) {
        if (s.n <= 0 || !s.name) __builtin_trap();
        for (int i = 0; i < s.n; i++) {
            const cs_suite_item *it = &s.items[i];
            if (!it->id || !it->id[0] || !it->text || it->s.samples <= 0 || !it->s.seeds) __builtin_trap();
            volatile uint64_t sink = it->s.seeds[it->s.samples - 1];
            (void)sink;
            for (int j = 0; j < i; j++)
                if (!strcmp(s.items[j].id, it->id)) __builtin_trap(); /* ids unique */
            if (it->kind != CS_TASK_TXT2IMG && !it->ref) __builtin_trap();
        }
        cs_suite_free(&s);
    } else if (!strstr(err.msg, "fuzz/s.json")) {
        __builtin_trap(); /* every error names the file */
    }
    return 0;
}
