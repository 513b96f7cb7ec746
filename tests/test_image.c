/* test_image.c — image decoding (every PNG flavour, JPEG kinds, bad input),
 * alpha over white against ../shared/refs/pdq (ALPHA.md), PNG encoding and
 * text chunks, resizing known answers, luma, SHA-256, progress. Test images
 * are written here with libpng/libjpeg directly, so the decoder is checked
 * against pixels we chose, not against itself. */
#include <png.h>
#include <setjmp.h>
#include <stddef.h>
#include <stdio.h>
#include <zlib.h>

#include <jpeglib.h>

#include "core/hash_sha256.h"
#include "core/image.h"
#include "core/progress.h"
#include "tests/t.h"

/* ---- writing test PNGs with libpng ---- */

typedef struct {
    uint8_t *d;
    size_t n, cap;
} membuf;

static void mb_write(png_structp png, png_bytep data, size_t n) {
    membuf *m = png_get_io_ptr(png);
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->d = realloc(m->d, m->cap);
    }
    memcpy(m->d + m->n, data, n);
    m->n += n;
}
static void mb_flush(png_structp png) { (void)png; }

/* rows: packed as libpng expects for (depth, ctype); 16-bit big-endian. */
static membuf make_png(int w, int h, int depth, int ctype, int interlace, uint8_t **rows,
                       const png_color *pal, int npal, const uint8_t *trns, int ntrns,
                       const png_color_16 *trns_color) {
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        free(m.d);
        return (membuf){0};
    }
    png_set_write_fn(png, &m, mb_write, mb_flush);
    png_set_IHDR(png, info, w, h, depth, ctype, interlace, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns || trns_color) png_set_tRNS(png, info, trns, ntrns, trns_color);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return m;
}

static uint8_t ow(unsigned c, unsigned a) { /* ALPHA.md, written out independently */
    return (uint8_t)((c * a + 255 * (255 - a) + 127) / 255);
}

static uint8_t val(int x, int y, int c) { return (uint8_t)((x * 37 + y * 91 + c * 53 + x * y) & 255); }

#define W 13
#define H 7

/* Checks img == expected RGB. */
static int same_rgb(const cs_image *img, const uint8_t *exp, int w, int h) {
    if (img->w != w || img->h != h) return 0;
    return !memcmp(img->rgb, exp, (size_t)w * h * 3);
}

static void decode_mem(cs_image *img, membuf m, cs_err *err, int *rc) {
    *rc = cs_image_decode(img, m.d, m.n, "test.png", NULL, err);
}

static void test_png_rgb_rgba_8_16(void) {
    for (int interlace = 0; interlace <= 1; interlace++)
        for (int depth = 8; depth <= 16; depth += 8)
            for (int alpha = 0; alpha <= 1; alpha++) {
                int ch = alpha ? 4 : 3, bpc = depth / 8;
                uint8_t buf[H][W * 4 * 2], *rows[H], exp[W * H * 3];
                for (int y = 0; y < H; y++) {
                    rows[y] = buf[y];
                    for (int x = 0; x < W; x++) {
                        uint8_t a = alpha ? val(x, y, 3) : 255;
                        for (int c = 0; c < ch; c++) {
                            uint8_t v = c < 3 ? val(x, y, c) : a;
                            if (bpc == 1) buf[y][x * ch + c] = v;
                            else { /* v*257 scales back to v exactly */
                                buf[y][(x * ch + c) * 2] = v;
                                buf[y][(x * ch + c) * 2 + 1] = v;
                            }
                        }
                        for (int c = 0; c < 3; c++) exp[(y * W + x) * 3 + c] = ow(val(x, y, c), a);
                    }
                }
                membuf m = make_png(W, H, depth, alpha ? PNG_COLOR_TYPE_RGBA : PNG_COLOR_TYPE_RGB,
                                    interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, rows, NULL, 0,
                                    NULL, 0, NULL);
                REQUIRE(m.d);
                cs_image img;
                cs_err err = {0};
                int rc;
                decode_mem(&img, m, &err, &rc);
                CHECKF(rc == 0, "%s", err.msg);
                CHECKF(same_rgb(&img, exp, W, H), "depth %d alpha %d interlace %d", depth, alpha, interlace);
                cs_image_free(&img);
                free(m.d);
            }
}

static void test_png_gray_depths(void) {
    for (int depth = 1; depth <= 16; depth *= 2)
        for (int alpha = 0; alpha <= (depth >= 8); alpha++) {
            int maxv = (1 << (depth > 8 ? 8 : depth)) - 1; /* 16-bit: use v*257 */
            uint8_t buf[H][W * 4], *rows[H], exp[W * H * 3];
            memset(buf, 0, sizeof buf);
            for (int y = 0; y < H; y++) {
                rows[y] = buf[y];
                for (int x = 0; x < W; x++) {
                    int g = val(x, y, 0) % (maxv + 1);
                    uint8_t g8 = (uint8_t)(g * 255 / maxv), a = alpha ? val(x, y, 2) : 255;
                    if (depth < 8) {
                        int ppb = 8 / depth, sh = (ppb - 1 - x % ppb) * depth;
                        buf[y][x / ppb] |= (uint8_t)(g << sh);
                    } else if (depth == 8) {
                        buf[y][x * (1 + alpha)] = (uint8_t)g;
                        if (alpha) buf[y][x * 2 + 1] = a;
                    } else {
                        int s = 2 * (1 + alpha);
                        buf[y][x * s] = buf[y][x * s + 1] = (uint8_t)g;
                        if (alpha) buf[y][x * s + 2] = buf[y][x * s + 3] = a;
                    }
                    for (int c = 0; c < 3; c++) exp[(y * W + x) * 3 + c] = ow(g8, a);
                }
            }
            membuf m = make_png(W, H, depth, alpha ? PNG_COLOR_TYPE_GRAY_ALPHA : PNG_COLOR_TYPE_GRAY,
                                PNG_INTERLACE_NONE, rows, NULL, 0, NULL, 0, NULL);
            REQUIRE(m.d);
            cs_image img;
            cs_err err = {0};
            int rc;
            decode_mem(&img, m, &err, &rc);
            CHECKF(rc == 0, "%s", err.msg);
            CHECKF(same_rgb(&img, exp, W, H), "gray depth %d alpha %d", depth, alpha);
            cs_image_free(&img);
            free(m.d);
        }
}

static void test_png_palette_trns(void) {
    for (int depth = 1; depth <= 8; depth *= 2)
        for (int interlace = 0; interlace <= 1; interlace++) {
            int npal = 1 << depth;
            png_color pal[256];
            uint8_t trns[256];
            int ntrns = npal > 2 ? npal - 1 : 1; /* last entries have no tRNS: opaque */
            for (int i = 0; i < npal; i++) {
                pal[i] = (png_color){(uint8_t)(i * 31 + 7), (uint8_t)(255 - i * 13), (uint8_t)(i * 5)};
                trns[i] = (uint8_t)(i * 97 % 256);
            }
            uint8_t buf[H][W], *rows[H], exp[W * H * 3];
            memset(buf, 0, sizeof buf);
            for (int y = 0; y < H; y++) {
                rows[y] = buf[y];
                for (int x = 0; x < W; x++) {
                    int idx = val(x, y, 1) % npal;
                    int ppb = 8 / depth, sh = (ppb - 1 - x % ppb) * depth;
                    buf[y][x / ppb] |= (uint8_t)(idx << sh);
                    uint8_t a = idx < ntrns ? trns[idx] : 255;
                    exp[(y * W + x) * 3 + 0] = ow(pal[idx].red, a);
                    exp[(y * W + x) * 3 + 1] = ow(pal[idx].green, a);
                    exp[(y * W + x) * 3 + 2] = ow(pal[idx].blue, a);
                }
            }
            membuf m = make_png(W, H, depth, PNG_COLOR_TYPE_PALETTE,
                                interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, rows, pal, npal,
                                trns, ntrns, NULL);
            REQUIRE(m.d);
            cs_image img;
            cs_err err = {0};
            int rc;
            decode_mem(&img, m, &err, &rc);
            CHECKF(rc == 0, "%s", err.msg);
            CHECKF(same_rgb(&img, exp, W, H), "palette depth %d interlace %d", depth, interlace);
            cs_image_free(&img);
            free(m.d);
        }
}

/* tRNS on gray/RGB: one colour key is fully transparent (becomes white). */
static void test_png_color_key(void) {
    uint8_t buf[H][W * 3], *rows[H], exp[W * H * 3];
    for (int y = 0; y < H; y++) {
        rows[y] = buf[y];
        for (int x = 0; x < W; x++) {
            int key = (x + y) % 3 == 0;
            for (int c = 0; c < 3; c++) {
                buf[y][x * 3 + c] = key ? (uint8_t)(10 * c + 1) : val(x, y, c);
                exp[(y * W + x) * 3 + c] = key ? 255 : buf[y][x * 3 + c];
            }
        }
    }
    /* make sure no non-key pixel equals the key by chance */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if ((x + y) % 3 && buf[y][x * 3] == 1 && buf[y][x * 3 + 1] == 11 && buf[y][x * 3 + 2] == 21)
                buf[y][x * 3] = exp[(y * W + x) * 3] = 2;
    png_color_16 key = {.red = 1, .green = 11, .blue = 21};
    membuf m = make_png(W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, rows, NULL, 0, NULL, 0, &key);
    REQUIRE(m.d);
    cs_image img;
    cs_err err = {0};
    int rc;
    decode_mem(&img, m, &err, &rc);
    CHECKF(rc == 0, "%s", err.msg);
    CHECK(same_rgb(&img, exp, W, H));
    cs_image_free(&img);
    free(m.d);
}

/* ALPHA.md step (b): flattening the originals gives the reference's flat PNGs byte for byte. */
static void test_twemoji_flatten_matches_reference(void) {
    const char *base = "../shared/refs/pdq/inputs/";
    char path[4096];
    snprintf(path, sizeof path, "%stwemoji-flat.list", base);
    FILE *f = fopen(path, "r");
    REQUIRE(f);
    char line[1024];
    int n = 0, same = 0, nrgba = 0, npal = 0;
    while (fgets(line, sizeof line, f)) {
        char orig[512], flat[512], mode[16];
        if (sscanf(line, "%511s %511s %15s", orig, flat, mode) != 3) continue;
        char po[4096], pf[4096];
        snprintf(po, sizeof po, "../shared/data/twemoji-64/%s", orig);
        snprintf(pf, sizeof pf, "%stwemoji-flat/%s", base, flat);
        cs_image a, b;
        cs_err err = {0};
        int ra = cs_image_load(&a, po, NULL, &err);
        CHECKF(ra == 0, "%s", err.msg);
        int rb = cs_image_load(&b, pf, NULL, &err);
        CHECKF(rb == 0, "%s", err.msg);
        n++;
        if (!ra && !rb && a.w == b.w && a.h == b.h && !memcmp(a.rgb, b.rgb, (size_t)a.w * a.h * 3)) same++;
        else fprintf(stderr, "differs: %s\n", orig);
        nrgba += !strcmp(mode, "RGBA");
        npal += !strcmp(mode, "P");
        cs_image_free(&a);
        cs_image_free(&b);
    }
    fclose(f);
    CHECKF(n == 300 && same == n, "%d/%d identical", same, n);
    CHECK(nrgba > 0 && npal > 0); /* both kinds exercised */
}

/* ---- JPEG written with libjpeg ---- */

static membuf make_jpeg(int w, int h, int comps, J_COLOR_SPACE cs, int progressive, int quality,
                        const uint8_t *pix) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long n = 0;
    jpeg_mem_dest(&c, &out, &n);
    c.image_width = w;
    c.image_height = h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(pix + (size_t)c.next_scanline * w * comps);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    membuf m = {malloc(n), n, n};
    memcpy(m.d, out, n);
    free(out);
    return m;
}

static void test_jpeg_baseline_progressive_gray(void) {
    enum { JW = 48, JH = 32 };
    static uint8_t pix[JW * JH * 3];
    for (int y = 0; y < JH; y++)
        for (int x = 0; x < JW; x++)
            for (int c = 0; c < 3; c++) pix[(y * JW + x) * 3 + c] = (uint8_t)(x * 2 + c * 30 + y * 2);
    membuf base = make_jpeg(JW, JH, 3, JCS_RGB, 0, 95, pix);
    membuf prog = make_jpeg(JW, JH, 3, JCS_RGB, 1, 95, pix);
    cs_image a, b;
    cs_err err = {0};
    CHECKF(cs_image_decode(&a, base.d, base.n, "base.jpg", NULL, &err) == 0, "%s", err.msg);
    CHECKF(cs_image_decode(&b, prog.d, prog.n, "prog.jpg", NULL, &err) == 0, "%s", err.msg);
    REQUIRE(a.rgb && b.rgb);
    /* same quantised coefficients: progressive decodes to the very same pixels */
    CHECK(a.w == JW && a.h == JH && !memcmp(a.rgb, b.rgb, sizeof pix));
    int maxd = 0;
    for (size_t i = 0; i < sizeof pix; i++) {
        int d = abs((int)a.rgb[i] - pix[i]);
        if (d > maxd) maxd = d;
    }
    CHECKF(maxd <= 12, "max error %d at q95", maxd);
    cs_image_free(&a);
    cs_image_free(&b);
    free(base.d);
    free(prog.d);

    static uint8_t g[JW * JH];
    for (int i = 0; i < JW * JH; i++) g[i] = (uint8_t)(i % JW * 5);
    membuf gm = make_jpeg(JW, JH, 1, JCS_GRAYSCALE, 0, 100, g);
    CHECKF(cs_image_decode(&a, gm.d, gm.n, "gray.jpg", NULL, &err) == 0, "%s", err.msg);
    REQUIRE(a.rgb);
    int ok = 1;
    for (int i = 0; i < JW * JH; i++) {
        uint8_t *p = a.rgb + 3 * i;
        if (p[0] != p[1] || p[1] != p[2] || abs((int)p[0] - g[i]) > 3) ok = 0;
    }
    CHECK(ok);
    cs_image_free(&a);
    free(gm.d);
}

static void test_jpeg_cmyk_adobe(void) {
    /* four flat bands: cyan, magenta, yellow, 50% black; stored inverted
     * (Adobe convention: libjpeg writes an APP14 marker for CMYK) */
    enum { JW = 32, JH = 32 };
    static const uint8_t ink[4][4] = {{255, 0, 0, 0}, {0, 255, 0, 0}, {0, 0, 255, 0}, {0, 0, 0, 128}};
    static const uint8_t rgb[4][3] = {{0, 255, 255}, {255, 0, 255}, {255, 255, 0}, {127, 127, 127}};
    static uint8_t pix[JW * JH * 4];
    for (int y = 0; y < JH; y++)
        for (int x = 0; x < JW; x++)
            for (int c = 0; c < 4; c++) pix[(y * JW + x) * 4 + c] = (uint8_t)(255 - ink[y / 8][c]);
    membuf m = make_jpeg(JW, JH, 4, JCS_CMYK, 0, 100, pix);
    cs_image a;
    cs_err err = {0};
    CHECKF(cs_image_decode(&a, m.d, m.n, "cmyk.jpg", NULL, &err) == 0, "%s", err.msg);
    REQUIRE(a.rgb);
    int maxd = 0;
    for (int band = 0; band < 4; band++) {
        const uint8_t *p = a.rgb + ((size_t)(band * 8 + 4) * JW + 16) * 3; /* band centre */
        for (int c = 0; c < 3; c++) {
            int d = abs((int)p[c] - rgb[band][c]);
            if (d > maxd) maxd = d;
        }
    }
    CHECKF(maxd <= 4, "max error %d", maxd);
    cs_image_free(&a);
    free(m.d);
}

static void test_jpeg_corrupt(void) {
    enum { JW = 64, JH = 64 };
    static uint8_t pix[JW * JH * 3];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = (uint8_t)(i * 7);
    membuf m = make_jpeg(JW, JH, 3, JCS_RGB, 0, 90, pix);
    /* find the end of the SOS header; fill the entropy data with garbage */
    size_t sos = 0;
    for (size_t i = 2; i + 1 < m.n; i++)
        if (m.d[i] == 0xff && m.d[i + 1] == 0xda) { sos = i; break; }
    REQUIRE(sos);
    size_t data = sos + 2 + ((size_t)m.d[sos + 2] << 8 | m.d[sos + 3]);
    uint32_t s = 12345;
    for (size_t i = data; i + 2 < m.n; i++) {
        s = s * 1103515245 + 12345;
        m.d[i] = (uint8_t)(s >> 16);
    }
    cs_image a;
    cs_err err = {0};
    CHECK(cs_image_decode(&a, m.d, m.n, "garbage.jpg", NULL, &err) == -1);
    CHECKF(strstr(err.msg, "garbage.jpg: invalid JPEG") != NULL, "%s", err.msg);
    CHECK(a.rgb == NULL);
    free(m.d);
    /* truncated in the middle of the scan */
    m = make_jpeg(JW, JH, 3, JCS_RGB, 0, 90, pix);
    cs_err_clear(&err);
    CHECK(cs_image_decode(&a, m.d, m.n / 2, "trunc.jpg", NULL, &err) == -1);
    CHECKF(strstr(err.msg, "trunc.jpg: invalid JPEG") != NULL, "%s", err.msg);
    /* header only */
    CHECK(cs_image_decode(&a, m.d, 20, "hdr.jpg", NULL, &err) == -1);
    free(m.d);
}

/* ---- bad PNG input ---- */

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_png_bad_input(void) {
    cs_image img;
    cs_err err = {0};
    CHECK(cs_image_decode(&img, (const uint8_t *)"", 0, "empty.png", NULL, &err) == -1);
    CHECKF(!strcmp(err.msg, "empty.png: empty file"), "%s", err.msg);
    const char *txt = "hello, I am a text file\n";
    CHECK(cs_image_decode(&img, (const uint8_t *)txt, strlen(txt), "t.png", NULL, &err) == -1);
    CHECKF(err.code == CS_EFORMAT && strstr(err.msg, "t.png: not a PNG or JPEG"), "%s", err.msg);

    /* a valid signature + IHDR claiming 100000 x 100000 (CRC correct) */
    uint8_t bomb[8 + 25 + 12] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    put32(bomb + 8, 13);
    memcpy(bomb + 12, "IHDR", 4);
    put32(bomb + 16, 100000);
    put32(bomb + 20, 100000);
    bomb[24] = 8;
    bomb[25] = 2;
    put32(bomb + 29, (uint32_t)crc32(0, bomb + 12, 17));
    put32(bomb + 33, 0); /* IEND-less: never reached */
    CHECK(cs_image_decode(&img, bomb, sizeof bomb, "bomb.png", NULL, &err) == -1);
    CHECKF(err.code == CS_ELIMIT && strstr(err.msg, "bomb.png: image of 100000x100000"), "%s", err.msg);

    /* truncated PNG, and a max_pixels limit below the image */
    uint8_t buf[H][W * 3], *rows[H];
    for (int y = 0; y < H; y++) rows[y] = buf[y], memset(buf[y], y * 10, sizeof buf[y]);
    membuf m = make_png(W, H, 8, PNG_COLOR_TYPE_RGB, 0, rows, NULL, 0, NULL, 0, NULL);
    REQUIRE(m.d);
    CHECK(cs_image_decode(&img, m.d, m.n - 30, "cut.png", NULL, &err) == -1);
    CHECKF(err.code == CS_EFORMAT && strstr(err.msg, "cut.png: invalid PNG"), "%s", err.msg);
    cs_image_opts o = {.max_pixels = W * H - 1};
    CHECK(cs_image_decode(&img, m.d, m.n, "small.png", &o, &err) == -1 && err.code == CS_ELIMIT);
    o.max_pixels = W * H;
    CHECK(cs_image_decode(&img, m.d, m.n, "small.png", &o, &err) == 0);
    cs_image_free(&img);
    /* corrupted IDAT byte: CRC failure */
    m.d[m.n - 20] ^= 0x55;
    CHECK(cs_image_decode(&img, m.d, m.n, "crc.png", NULL, &err) == -1);
    free(m.d);
    /* a directory and a missing file */
    CHECK(cs_image_load(&img, "tests", NULL, &err) == -1);
    CHECKF(strstr(err.msg, "tests: is a directory") != NULL, "%s", err.msg);
    CHECK(cs_image_load(&img, "no/such/file.png", NULL, &err) == -1 && err.code == CS_EIO);
}

/* ---- encoding and text chunks ---- */

static void test_png_encode_roundtrip_text(void) {
    cs_image img;
    REQUIRE(cs_image_alloc(&img, W, H, NULL) == 0);
    for (int i = 0; i < W * H * 3; i++) img.rgb[i] = (uint8_t)(i * 11);
    cs_png_text t[] = {{"prompt", "a photo of a cat"}, {"caption", "caf\xc3\xa9 \xe2\x98\x95"},
                       {"seed", "42"}};
    uint8_t *out;
    size_t len;
    cs_err err = {0};
    CHECKF(cs_image_encode_png(&img, t, 3, &out, &len, &err) == 0, "%s", err.msg);
    cs_image back;
    CHECK(cs_image_decode(&back, out, len, "mem.png", NULL, &err) == 0);
    CHECK(same_rgb(&back, img.rgb, W, H));
    cs_image_free(&back);
    free(out);

    char *dir = t_tmpdir("img");
    REQUIRE(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/x.png", dir);
    CHECKF(cs_image_save_png(&img, path, t, 3, &err) == 0, "%s", err.msg);
    CHECK(cs_image_load(&back, path, NULL, &err) == 0 && same_rgb(&back, img.rgb, W, H));
    cs_image_free(&back);
    char *v = NULL;
    CHECK(cs_png_read_text(path, "prompt", &v, &err) == 0 && v && !strcmp(v, "a photo of a cat"));
    free(v);
    CHECK(cs_png_read_text(path, "caption", &v, &err) == 0 && v && !strcmp(v, t[1].value));
    free(v);
    CHECK(cs_png_read_text(path, "seed", &v, &err) == 0 && v && !strcmp(v, "42"));
    free(v);
    CHECK(cs_png_read_text(path, "nope", &v, &err) == 0 && v == NULL);
    /* libpng-written zTXt is read too */
    {
        FILE *f = fopen(path, "wb");
        png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
        png_infop info = png_create_info_struct(png);
        png_init_io(png, f);
        png_set_IHDR(png, info, 1, 1, 8, PNG_COLOR_TYPE_GRAY, 0, 0, 0);
        png_text zt = {.compression = PNG_TEXT_COMPRESSION_zTXt, .key = "long",
                       .text = "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz compressed"};
        zt.text_length = strlen(zt.text);
        png_set_text(png, info, &zt, 1);
        png_write_info(png, info);
        uint8_t px = 0;
        png_write_row(png, &px);
        png_write_end(png, NULL);
        png_destroy_write_struct(&png, &info);
        fclose(f);
        CHECK(cs_png_read_text(path, "long", &v, &err) == 0 && v && !strcmp(v, zt.text));
        free(v);
    }
    CHECK(cs_png_read_text("tests/t.h", "x", &v, &err) == -1 && err.code == CS_EFORMAT);
    remove(path);
    remove(dir);
    free(dir);
    cs_image_free(&img);
}

/* ---- resizing ---- */

static void test_resize_area_known(void) {
    cs_image s, d;
    cs_err err = {0};
    REQUIRE(cs_image_alloc(&s, 2, 2, NULL) == 0);
    const uint8_t px[12] = {10, 0, 255, 20, 1, 255, 30, 1, 0, 41, 1, 0};
    memcpy(s.rgb, px, 12);
    CHECK(cs_image_resize(&d, &s, 1, 1, CS_RESIZE_AREA, &err) == 0);
    /* (10+20+30+41+2)/4 = 25 (25.25); (0+1+1+1+2)/4 = 1 (0.75 rounds up); 127.5 -> 128 */
    CHECK(d.rgb[0] == 25 && d.rgb[1] == 1 && d.rgb[2] == 128);
    cs_image_free(&d);
    cs_image_free(&s);
    /* 3 -> 2: out0 = (0*1 + 90*0.5)/1.5 = 30, out1 = (90*0.5 + 180)/1.5 = 150 */
    REQUIRE(cs_image_alloc(&s, 3, 1, NULL) == 0);
    for (int c = 0; c < 3; c++) s.rgb[c] = 0, s.rgb[3 + c] = 90, s.rgb[6 + c] = 180;
    CHECK(cs_image_resize(&d, &s, 2, 1, CS_RESIZE_AREA, &err) == 0);
    CHECK(d.rgb[0] == 30 && d.rgb[3] == 150 && d.rgb[5] == 150);
    cs_image_free(&d);
    /* AUTO shrinks with area */
    CHECK(cs_image_resize(&d, &s, 2, 1, CS_RESIZE_AUTO, &err) == 0 && d.rgb[0] == 30);
    cs_image_free(&d);
    cs_image_free(&s);
    /* 64x48 -> 16x12: every output is the exact mean of a 4x4 block */
    REQUIRE(cs_image_alloc(&s, 64, 48, NULL) == 0);
    for (int i = 0; i < 64 * 48 * 3; i++) s.rgb[i] = (uint8_t)(i * 29 % 251);
    CHECK(cs_image_resize(&d, &s, 16, 12, CS_RESIZE_AREA, &err) == 0);
    int ok = 1;
    for (int y = 0; y < 12; y++)
        for (int x = 0; x < 16; x++)
            for (int c = 0; c < 3; c++) {
                int sum = 0;
                for (int j = 0; j < 4; j++)
                    for (int i = 0; i < 4; i++) sum += s.rgb[((y * 4 + j) * 64 + x * 4 + i) * 3 + c];
                if (d.rgb[(y * 16 + x) * 3 + c] != (sum + 8) / 16) ok = 0;
            }
    CHECK(ok);
    cs_image_free(&d);
    cs_image_free(&s);
}

static void test_resize_up(void) {
    cs_image s, d;
    cs_err err = {0};
    REQUIRE(cs_image_alloc(&s, 2, 1, NULL) == 0);
    memset(s.rgb, 0, 3);
    memset(s.rgb + 3, 100, 3);
    CHECK(cs_image_resize(&d, &s, 4, 1, CS_RESIZE_BILINEAR, &err) == 0);
    /* pixel centres 0.25, 0.75, 1.25, 1.75 -> 0, 25, 75, 100 */
    CHECK(d.rgb[0] == 0 && d.rgb[3] == 25 && d.rgb[6] == 75 && d.rgb[9] == 100);
    cs_image_free(&d);
    cs_image_free(&s);
    /* bicubic keeps a constant image constant and a linear ramp's mean */
    REQUIRE(cs_image_alloc(&s, 5, 4, NULL) == 0);
    memset(s.rgb, 77, 5 * 4 * 3);
    CHECK(cs_image_resize(&d, &s, 17, 9, CS_RESIZE_BICUBIC, &err) == 0);
    int ok = 1;
    for (int i = 0; i < 17 * 9 * 3; i++) ok &= d.rgb[i] == 77;
    CHECK(ok);
    cs_image_free(&d);
    CHECK(cs_image_resize(&d, &s, 10, 8, CS_RESIZE_AUTO, &err) == 0 && d.rgb[0] == 77);
    cs_image_free(&d);
    CHECK(cs_image_resize(&d, &s, 5, 4, CS_RESIZE_BICUBIC, &err) == 0 && !memcmp(d.rgb, s.rgb, 60));
    cs_image_free(&d);
    cs_image_free(&s);
}

static void test_luma_sha256_progress(void) {
    cs_image s;
    REQUIRE(cs_image_alloc(&s, 2, 1, NULL) == 0);
    const uint8_t px[6] = {255, 0, 0, 10, 20, 30};
    memcpy(s.rgb, px, 6);
    float l[2];
    cs_image_luma(l, &s);
    CHECK(fabsf(l[0] - 76.245f) < 1e-3f && fabsf(l[1] - (2.99f + 11.74f + 3.42f)) < 1e-3f);
    cs_image_free(&s);
    char hex[65];
    cs_sha256_hex("abc", 3, hex); /* FIPS 180-2 example */
    CHECK(!strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    cs_sha256_hex("", 0, hex);
    CHECK(!strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    char *dir = t_tmpdir("sha");
    REQUIRE(dir);
    char path[4200];
    snprintf(path, sizeof path, "%s/abc", dir);
    FILE *f = fopen(path, "wb");
    fputs("abc", f);
    fclose(f);
    cs_err err = {0};
    CHECK(cs_sha256_file_hex(path, hex, &err) == 0 && !strncmp(hex, "ba7816bf", 8));
    remove(path);
    remove(dir);
    free(dir);
    CHECK(cs_sha256_file_hex("no/such", hex, &err) == -1 && err.code == CS_EIO);
    /* progress: safe with NULL and across add/set_total/end */
    cs_progress *p = cs_progress_start("test", 0, "img");
    REQUIRE(p);
    cs_progress_add(p, 5);
    cs_progress_set_total(p, 10);
    cs_progress_add(p, 5);
    cs_progress_end(p);
    cs_progress_add(NULL, 1);
    cs_progress_end(NULL);
}

int main(void) {
    RUN(test_png_rgb_rgba_8_16);
    RUN(test_png_gray_depths);
    RUN(test_png_palette_trns);
    RUN(test_png_color_key);
    RUN(test_twemoji_flatten_matches_reference);
    RUN(test_jpeg_baseline_progressive_gray);
    RUN(test_jpeg_cmyk_adobe);
    RUN(test_jpeg_corrupt);
    RUN(test_png_bad_input);
    RUN(test_png_encode_roundtrip_text);
    RUN(test_resize_area_known);
    RUN(test_resize_up);
    RUN(test_luma_sha256_progress);
    return T_DONE();
}
