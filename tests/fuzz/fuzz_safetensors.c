/* fuzz_safetensors.c — libFuzzer target for the safetensors header parser.
 *
 * Includes core/safetensors.c itself to reach st_parse(), which validates an
 * in-memory file image: libFuzzer hands us an exact-size heap buffer, so
 * ASan flags any read past the end (an mmap'd file would hide overreads
 * inside the last page). After a successful parse every tensor's bytes are
 * read and every float tensor converted, so a range that escaped validation
 * shows up as a crash. Build and run with tests/fuzz/run.sh. */
#include "../../core/safetensors.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 8) return 0; /* cs_safetensors_open refuses these before parsing */
    cs_safetensors st;
    memset(&st, 0, sizeof st);
    st.path = strdup("fuzz.safetensors");
    cs_err err = {0};
    if (st_parse(&st, data, size, &err) == 0) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < st.n; i++) {
            const cs_safetensors_tensor *t = &st.tensors[i];
            if (cs_safetensors_find(&st, t->name) != t) __builtin_trap(); /* sorted, unique */
            for (size_t b = 0; b < t->nbytes; b++) sink ^= ((const uint8_t *)t->data)[b];
            const float *f;
            int owned;
            if (cs_safetensors_get_f32(&st, t->name, t->ndim, t->shape, &f, &owned, &err) == 0) {
                if (t->numel) sink ^= ((const volatile uint8_t *)f)[0];
                if (owned) free((void *)f);
            }
        }
        if (st.metadata_json && st.metadata_json[0] != '{') __builtin_trap();
    } else if (!strstr(err.msg, "fuzz.safetensors")) {
        __builtin_trap(); /* every error names the file */
    }
    st.map = NULL; /* nothing mapped: the buffer is libFuzzer's */
    cs_safetensors_close(&st);
    return 0;
}
