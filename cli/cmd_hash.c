/* cmd_hash.c — `copyscope hash FILE... [--json] [--dihedral]`: every
 * perceptual hash of each file (PDQ + quality, pHash, dHash, aHash). A file
 * that cannot be decoded gives one error line and the rest still run; the
 * exit status is 1 if any failed. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/image.h"
#include "index/hashes.h"
#include "index/pdq.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: copyscope hash FILE... [--json] [--dihedral]\n"
            "\n"
            "Prints the perceptual hashes of each image (PNG or JPEG; alpha composited\n"
            "over white):\n"
            "  pdq    256-bit PDQ as 64 hex digits, with its quality 0..100 (below 50:\n"
            "         unreliable, flagged \"low\"); bit-exact with the reference C++ tool\n"
            "  phash, dhash, ahash   64-bit hashes as 16 hex digits, as Python imagehash\n"
            "         prints them\n"
            "\n"
            "  --json       one JSON array, an object per file ({\"file\", \"width\", \"height\",\n"
            "               \"pdq\", \"pdq_quality\", \"phash\", \"dhash\", \"ahash\"}, or\n"
            "               {\"file\", \"error\"} for a file that failed)\n"
            "  --dihedral   also the PDQ hashes of the 8 rotations/mirrors (derived in\n"
            "               the DCT domain, as the reference tool's --pdqdih)\n"
            "  --db PATH    accepted for uniformity; not used\n"
            "\n"
            "Exit status: 0 if every file was hashed, 1 if any failed (each failure is\n"
            "reported as \"copyscope: FILE: problem\" on stderr), 2 on a usage error.\n");
}

/* Hashes one file; fills the text or JSON output. Returns 0 / -1. */
static int hash_file(const char *path, int dihedral, cJSON *arr, cs_err *err) {
    cs_image img;
    if (cs_image_load(&img, path, NULL, err)) return -1;
    cs_hashes h;
    cs_pdq dih[CS_PDQ_NDIHEDRAL];
    int rc = cs_hashes_compute(&img, &h, err);
    if (!rc && dihedral) rc = cs_pdq_dihedral(&img, 0, dih, err);
    int w = img.w, ht = img.h;
    cs_image_free(&img);
    if (rc) return cs_wrap(err, "%s", path);
    char pdq[65], ph[17], dh[17], ah[17];
    cs_pdq_hex(h.pdq, pdq);
    cs_hash64_hex(h.phash, ph);
    cs_hash64_hex(h.dhash, dh);
    cs_hash64_hex(h.ahash, ah);
    if (arr) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddNumberToObject(o, "width", w);
        cJSON_AddNumberToObject(o, "height", ht);
        cJSON_AddStringToObject(o, "pdq", pdq);
        cJSON_AddNumberToObject(o, "pdq_quality", h.pdq_quality);
        cJSON_AddStringToObject(o, "phash", ph);
        cJSON_AddStringToObject(o, "dhash", dh);
        cJSON_AddStringToObject(o, "ahash", ah);
        if (dihedral) {
            cJSON *d = cJSON_AddObjectToObject(o, "pdq_dihedral");
            for (int k = 0; k < CS_PDQ_NDIHEDRAL; k++) {
                char hx[65];
                cs_pdq_to_hex(dih[k].hash, hx);
                cJSON_AddStringToObject(d, cs_pdq_dihedral_names[k], hx);
            }
        }
        cJSON_AddItemToArray(arr, o);
        return 0;
    }
    printf("%s  (%dx%d)\n", path, w, ht);
    printf("  pdq    %s  quality %d%s\n", pdq, h.pdq_quality,
           h.pdq_quality < CS_PDQ_MIN_QUALITY ? " (low)" : "");
    printf("  phash  %s\n  dhash  %s\n  ahash  %s\n", ph, dh, ah);
    if (dihedral)
        for (int k = 0; k < CS_PDQ_NDIHEDRAL; k++) {
            char hx[65];
            cs_pdq_to_hex(dih[k].hash, hx);
            printf("  pdq.%-10s %s\n", cs_pdq_dihedral_names[k], hx);
        }
    return 0;
}

int cmd_hash(int argc, char **argv) {
    static const struct option opts[] = {{"json", no_argument, 0, 'J'},
                                         {"dihedral", no_argument, 0, 'D'},
                                         {"db", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int json = 0, dihedral = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'J': json = 1; break;
        case 'D': dihedral = 1; break;
        case 'd': break;
        case 'h': usage(stdout); return CLI_OK;
        default: return cli_usage_hint("hash");
        }
    }
    if (optind >= argc) {
        return cli_usage_error("hash: no files given"), cli_usage_hint("hash");
    }
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        cs_err err = {0};
        if (hash_file(argv[i], dihedral, arr, &err)) {
            cli_fail(&err);
            failed++;
            if (arr) {
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "file", argv[i]);
                cJSON_AddStringToObject(o, "error", err.msg);
                cJSON_AddItemToArray(arr, o);
            }
        }
    }
    if (arr) {
        char *s = cJSON_Print(arr);
        if (s) puts(s);
        free(s);
        cJSON_Delete(arr);
    }
    return failed ? CLI_FAIL : CLI_OK;
}
