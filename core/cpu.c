/* cpu.c — see cpu.h. */
#include "core/cpu.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>

/* AVX-512 needs the CPU bits and the OS saving the opmask and zmm state
 * (XCR0 bits 1, 2, 5, 6, 7). */
static int detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return CS_ISA_BASE; /* OSXSAVE */
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0xe6) != 0xe6) return CS_ISA_BASE;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return CS_ISA_BASE;
    int f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
    if (!(f && dq && bw && vl)) return CS_ISA_BASE;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d)) return CS_ISA_AVX512;
    return (a & (1u << 5)) ? CS_ISA_AVX512_BF16 : CS_ISA_AVX512;
}
#else
static int detect(void) { return CS_ISA_BASE; }
#endif

static int g_detected = -1, g_cap = -2;

int cs_cpu_isa_detected(void) {
    if (g_detected < 0) g_detected = detect();
    return g_detected;
}

int cs_cpu_isa(void) {
    int d = cs_cpu_isa_detected();
    if (g_cap == -2) {
        const char *e = getenv("CS_ISA");
        g_cap = -1;
        if (e && (!strcmp(e, "avx2") || !strcmp(e, "base"))) g_cap = CS_ISA_BASE;
        else if (e && !strcmp(e, "avx512")) g_cap = CS_ISA_AVX512;
    }
    return g_cap >= 0 && g_cap < d ? g_cap : d;
}

void cs_cpu_force(int isa) {
    (void)cs_cpu_isa();
    g_cap = isa;
}
