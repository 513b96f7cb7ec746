/* image.c — cs_image allocation, loading from files, format sniffing, luma. */
#include "core/image.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/image_internal.h"

int cs_image_alloc(cs_image *img, int w, int h, cs_err *err) {
    img->w = img->h = 0;
    img->rgb = NULL;
    if (w <= 0 || h <= 0) return cs_fail(err, CS_EUSAGE, "image: invalid size %dx%d", w, h);
    size_t n = (size_t)w * (size_t)h * 3;
    img->rgb = malloc(n);
    if (!img->rgb) return cs_fail(err, CS_ENOMEM, "image: out of memory for %dx%d", w, h);
    img->w = w;
    img->h = h;
    return 0;
}

void cs_image_free(cs_image *img) {
    if (!img) return;
    free(img->rgb);
    img->rgb = NULL;
    img->w = img->h = 0;
}

int cs_image_check_size(int64_t w, int64_t h, int64_t max_pixels, const char *name, cs_err *err) {
    if (w <= 0 || h <= 0) return cs_fail(err, CS_EFORMAT, "%s: invalid image size %lldx%lld", name,
                                         (long long)w, (long long)h);
    if (w > 1000000 || h > 1000000 || w * h > max_pixels)
        return cs_fail(err, CS_ELIMIT, "%s: image of %lldx%lld pixels exceeds the limit of %lld pixels",
                       name, (long long)w, (long long)h, (long long)max_pixels);
    return 0;
}

/* Names formats we recognise but do not decode, for a clearer message. */
static const char *sniff_other(const uint8_t *b, size_t n) {
    if (n >= 6 && (!memcmp(b, "GIF87a", 6) || !memcmp(b, "GIF89a", 6))) return "GIF";
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WEBP", 4)) return "WebP";
    if (n >= 2 && b[0] == 'B' && b[1] == 'M') return "BMP";
    if (n >= 4 && (!memcmp(b, "II*\0", 4) || !memcmp(b, "MM\0*", 4))) return "TIFF";
    return NULL;
}

int cs_image_decode(cs_image *img, const uint8_t *buf, size_t len, const char *name,
                    const cs_image_opts *opts, cs_err *err) {
    img->w = img->h = 0;
    img->rgb = NULL;
    if (!name) name = "image";
    int64_t maxp = opts && opts->max_pixels > 0 ? opts->max_pixels : CS_IMAGE_DEFAULT_MAX_PIXELS;
    if (len == 0) return cs_fail(err, CS_EFORMAT, "%s: empty file", name);
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(buf, png_sig, 8)) return cs_png_decode(img, buf, len, name, maxp, err);
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        return cs_jpeg_decode(img, buf, len, name, maxp, err);
    const char *other = sniff_other(buf, len);
    if (other) return cs_fail(err, CS_EFORMAT, "%s: unsupported image format (%s)", name, other);
    return cs_fail(err, CS_EFORMAT, "%s: not a PNG or JPEG image", name);
}

int cs_read_file(const char *path, uint8_t **buf, size_t *len, cs_err *err) {
    *buf = NULL;
    *len = 0;
    /* O_NONBLOCK: opening a FIFO must not hang; regular files ignore it */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return cs_fail(err, CS_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return cs_fail(err, CS_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return cs_fail(err, CS_EIO, "%s: %s", path,
                       S_ISDIR(st.st_mode) ? "is a directory" : "not a regular file");
    }
    size_t n = (size_t)st.st_size, got = 0;
    uint8_t *b = malloc(n ? n : 1);
    if (!b) {
        close(fd);
        return cs_fail(err, CS_ENOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            close(fd);
            free(b);
            return cs_fail(err, CS_EIO, "%s: read failed: %s", path, e ? strerror(e) : "file shrank");
        }
        got += (size_t)r;
    }
    close(fd);
    *buf = b;
    *len = n;
    return 0;
}

int cs_image_load(cs_image *img, const char *path, const cs_image_opts *opts, cs_err *err) {
    img->w = img->h = 0;
    img->rgb = NULL;
    uint8_t *buf;
    size_t len;
    if (cs_read_file(path, &buf, &len, err)) return -1;
    int rc = cs_image_decode(img, buf, len, path, opts, err);
    free(buf);
    return rc;
}

void cs_image_luma(float *out, const cs_image *img) {
    size_t n = (size_t)img->w * (size_t)img->h;
    const uint8_t *p = img->rgb;
    for (size_t i = 0; i < n; i++, p += 3)
        out[i] = 0.299f * (float)p[0] + 0.587f * (float)p[1] + 0.114f * (float)p[2];
}
