/* test_nan_model.c — a checkpoint whose weights are NaN must stop generate
 * with an error naming the model (issue 19 item 18), not write black images
 * and exit 0. The NaN checkpoint is sd-tiny with every float tensor's bytes
 * set to 0xFF (a NaN in F32, F16 and BF16) in every .weight and .bias
 * tensor; integer tensors and buffers (alphas_cumprod: refused at load
 * already) are left alone. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/image.h"
#include "pipeline/generate.h"
#include "tests/t.h"

#define SDTINY "../shared/refs/sd-tiny"

static char *in_dir(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* sd-tiny with NaN floats, written to path; 0 on success. */
static int write_nan_copy(const char *path) {
    uint8_t *b;
    size_t len;
    if (cs_read_file(SDTINY "/model.safetensors", &b, &len, NULL) || len < 8) return -1;
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)b[i] << (8 * i);
    cJSON *h = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    int nf = 0;
    for (cJSON *t = h ? h->child : NULL; t; t = t->next) {
        const char *dt = cJSON_GetStringValue(cJSON_GetObjectItem(t, "dtype"));
        cJSON *off = cJSON_GetObjectItem(t, "data_offsets");
        if (!dt || !off || (strcmp(dt, "F32") && strcmp(dt, "F16") && strcmp(dt, "BF16"))) continue;
        size_t kn = strlen(t->string); /* weights only: buffers such as alphas_cumprod are checked at load */
        if (!(kn > 7 && !strcmp(t->string + kn - 7, ".weight")) && !(kn > 5 && !strcmp(t->string + kn - 5, ".bias")))
            continue;
        size_t a = (size_t)cJSON_GetArrayItem(off, 0)->valuedouble, z = (size_t)cJSON_GetArrayItem(off, 1)->valuedouble;
        if (8 + hl + z > len) continue;
        memset(b + 8 + hl + a, 0xFF, z - a);
        nf++;
    }
    cJSON_Delete(h);
    FILE *f = fopen(path, "wb");
    int ok = f && nf > 0 && fwrite(b, 1, len, f) == len;
    if (f) ok &= fclose(f) == 0;
    free(b);
    return ok ? 0 : -1;
}

static void test_nan_weights_stop_the_run(void) {
    char *dir = t_tmpdir("nan");
    REQUIRE(dir);
    char *model = in_dir(dir, "nan-model.safetensors"), *sp = in_dir(dir, "s.json"), *db = in_dir(dir, "g.db");
    char *out = in_dir(dir, "out");
    REQUIRE(write_nan_copy(model) == 0);
    FILE *f = fopen(sp, "w");
    REQUIRE(f);
    fputs("{\"name\": \"nan\", \"defaults\": {\"steps\": 3, \"size\": 32, \"samples\": 1},"
          " \"prompts\": [{\"id\": \"a\", \"text\": \"a red fox\"}]}", f);
    fclose(f);
    cs_generate_opts o = {.suite = sp, .model = model, .config = SDTINY "/config.json",
                          .vocab = "../shared/refs/clip-bpe/bpe_simple_vocab_16e6.txt.gz", .out = out, .db = db,
                          .threads = 2};
    cs_err e = {0};
    cs_generate_stats st;
    CHECK(cs_generate(&o, &st, &e) == -1);
    CHECKF(strstr(e.msg, "nan-model.safetensors: the model's") && strstr(e.msg, "not finite") &&
               strstr(e.msg, "prompts[0]"), "%s", e.msg);
    /* and the same suite on the real weights still runs */
    o.model = SDTINY "/model.safetensors";
    memset(&e, 0, sizeof e);
    CHECKF(cs_generate(&o, &st, &e) == 0 && st.generated == 1, "%s", e.msg);
    free(model), free(sp), free(db), free(out), free(dir);
}

int main(void) {
    RUN(test_nan_weights_stop_the_run);
    return T_DONE();
}
