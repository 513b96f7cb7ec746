/* progress.c — the one-line progress display (see progress.h).
 *
 * Counters are atomics so workers can call cs_progress_add freely; one
 * thread at a time (a trylock) redraws, at most every 100 ms on a terminal,
 * every 2 s when CS_PROGRESS=1 forces output to a file or pipe, and else, off
 * a terminal (nohup, CI), as a log line every 30 s (CS_PROGRESS_INTERVAL=S):
 * a generation of hours must not be silent until it ends. Off a terminal the
 * final line is written only after a periodic one, so short commands stay quiet. */
#include "core/progress.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"

struct cs_progress {
    char label[64], unit[16];
    atomic_llong done, total;
    double t0;                 /* start, seconds (monotonic) */
    _Atomic double next_draw;  /* earliest time of the next redraw */
    double interval;           /* seconds between redraws */
    int tty;                   /* stderr is a terminal: redraw in place */
    int enabled;
    int quiet_end;             /* no final line unless a periodic one was written */
    int drawn;
    pthread_mutex_t draw;
};

static void fmt_time(char *out, size_t n, double s) {
    if (s < 0 || s > 359999) {
        snprintf(out, n, "--:--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(out, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else snprintf(out, n, "%ld:%02ld", t / 60, t % 60);
}

static void draw(cs_progress *p, int final) {
    double el = cs_now_s() - p->t0;
    long long done = atomic_load(&p->done), total = atomic_load(&p->total);
    double rate = el > 0 ? done / el : 0;
    char line[256], tbuf[32];
    int k;
    if (total > 0) k = snprintf(line, sizeof line, "%s %lld/%lld", p->label, done, total);
    else k = snprintf(line, sizeof line, "%s %lld", p->label, done);
    if (k < 0 || k >= (int)sizeof line) k = (int)sizeof line - 1;
    if (final) {
        fmt_time(tbuf, sizeof tbuf, el);
        snprintf(line + k, sizeof line - k, "  %.1f %s/s  in %s", rate, p->unit, tbuf);
    } else {
        if (total > 0 && rate > 0) fmt_time(tbuf, sizeof tbuf, (total - done) / rate);
        else snprintf(tbuf, sizeof tbuf, "--:--");
        snprintf(line + k, sizeof line - k, "  %.1f %s/s  ETA %s", rate, p->unit, tbuf);
    }
    if (p->tty) fprintf(stderr, "\r%s\033[K%s", line, final ? "\n" : "");
    else fprintf(stderr, "copyscope: %s\n", line);
    p->drawn = 1;
    fflush(stderr);
}

cs_progress *cs_progress_start(const char *label, int64_t total, const char *unit) {
    cs_progress *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    snprintf(p->label, sizeof p->label, "%s", label ? label : "");
    snprintf(p->unit, sizeof p->unit, "%s", unit ? unit : "it");
    atomic_init(&p->done, 0);
    atomic_init(&p->total, total);
    p->t0 = cs_now_s();
    p->tty = isatty(STDERR_FILENO);
    const char *env = getenv("CS_PROGRESS");
    int forced = env && !strcmp(env, "1");
    p->enabled = !(env && !strcmp(env, "0"));
    p->interval = p->tty ? 0.1 : forced ? 2.0 : 30.0;
    const char *iv = getenv("CS_PROGRESS_INTERVAL");
    if (!p->tty && iv && atof(iv) > 0) p->interval = atof(iv);
    p->quiet_end = !p->tty && !forced;
    atomic_init(&p->next_draw, p->t0 + p->interval);
    pthread_mutex_init(&p->draw, NULL);
    return p;
}

void cs_progress_add(cs_progress *p, int64_t n) {
    if (!p) return;
    atomic_fetch_add(&p->done, n);
    if (!p->enabled) return;
    double t = cs_now_s();
    if (t < atomic_load(&p->next_draw)) return;
    if (pthread_mutex_trylock(&p->draw) != 0) return; /* another thread is drawing */
    if (t >= atomic_load(&p->next_draw)) {
        atomic_store(&p->next_draw, t + p->interval);
        draw(p, 0);
    }
    pthread_mutex_unlock(&p->draw);
}

void cs_progress_set_total(cs_progress *p, int64_t total) {
    if (p) atomic_store(&p->total, total);
}

void cs_progress_end(cs_progress *p) {
    if (!p) return;
    if (p->enabled && !(p->quiet_end && !p->drawn)) {
        pthread_mutex_lock(&p->draw);
        draw(p, 1);
        pthread_mutex_unlock(&p->draw);
    }
    pthread_mutex_destroy(&p->draw);
    free(p);
}
