/* cpu.h — which vector instruction sets the products may use, decided once
 * at run time from cpuid (the binary is built for x86-64 with AVX2 paths and
 * carries AVX-512 code in separately compiled functions).
 *
 * CS_ISA=avx2 in the environment (or cs_cpu_force) holds the products to the
 * AVX2/OpenBLAS path: the tests run both paths on AVX-512 machines. */
#ifndef CS_CPU_H
#define CS_CPU_H

enum { CS_ISA_BASE = 0, CS_ISA_AVX512 = 1, CS_ISA_AVX512_BF16 = 2 };

/* The best level this CPU (and the OS's saved state) allows, lowered by
 * CS_ISA / cs_cpu_force. */
int cs_cpu_isa(void);

/* Caps the level at most to isa (-1 = back to the detected level). Not thread
 * safe: call between runs, not during one. */
void cs_cpu_force(int isa);

/* The detected level ignoring any cap. */
int cs_cpu_isa_detected(void);

#endif
