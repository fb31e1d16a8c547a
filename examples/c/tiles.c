/* tiles.c: runs the matrix products of libtiles.so (tiles.ein) at every size around the
 * register tiles and cache blocks the compiler chooses for the target (x86-64: 4x8 f32 and 4x4
 * f64 tiles, 6x16 and 6x8 with AVX2; aarch64: 8x8 and 5x6; K blocks of a few hundred, 272
 * with AVX2), with A in C order (the kernel's
 * contiguous variant) and transposed (its general function), and checks every element against
 * plain loops. Inputs are small integers, so every sum is exact and must match bit for bit. */
#include "tiles.h"

#include <stdio.h>
#include <stdlib.h>

static const int ms[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 16, 17};
static const int ns[] = {1, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17, 24, 25};
static const int ks[] = {1, 2, 7, 16, 17, 239, 240, 241, 272, 273, 480, 481};
#define COUNT(a) (int)(sizeof(a) / sizeof((a)[0]))

/* One call at M x K x N; `transposed` lays A out column-major. Returns the number of wrong
 * elements. */
static int check(int dtype64, int M, int K, int N, int transposed) {
    size_t sa = (size_t)M * K, sb = (size_t)K * N, sc = (size_t)M * N;
    double *a = malloc(sa * sizeof(double)), *b = malloc(sb * sizeof(double));
    double *want = calloc(sc, sizeof(double));
    void *A = malloc(sa * 8), *B = malloc(sb * 8), *C = malloc(sc * 8);
    for (size_t n = 0; n < sa; n++) a[n] = (double)((int)(n * 7 % 11) - 5);
    for (size_t n = 0; n < sb; n++) b[n] = (double)((int)(n * 5 % 9) - 4);
    /* a is A in C order; the buffer passed holds it in the chosen layout. */
    for (int i = 0; i < M; i++)
        for (int k = 0; k < K; k++) {
            size_t at = transposed ? (size_t)k * M + i : (size_t)i * K + k;
            if (dtype64) ((double *)A)[at] = a[(size_t)i * K + k];
            else ((float *)A)[at] = (float)a[(size_t)i * K + k];
        }
    for (size_t n = 0; n < sb; n++) {
        if (dtype64) ((double *)B)[n] = b[n];
        else ((float *)B)[n] = (float)b[n];
    }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
            for (int k = 0; k < K; k++) want[(size_t)i * N + j] += a[(size_t)i * K + k] * b[(size_t)k * N + j];
    const int64_t a_shape[2] = {M, K}, b_shape[2] = {K, N}, c_shape[2] = {M, N};
    const int64_t a_strides[2] = {transposed ? 1 : K, transposed ? M : 1};
    const int64_t b_strides[2] = {N, 1}, c_strides[2] = {N, 1};
    int32_t type = dtype64 ? EINC_F64 : EINC_F32;
    einc_tensor args[3] = {
        {A, type, 2, a_shape, a_strides},
        {B, type, 2, b_shape, b_strides},
        {C, type, 2, c_shape, c_strides},
    };
    int32_t status = dtype64 ? einc_mm64(args, 3) : einc_mm32(args, 3);
    int wrong = 0;
    if (status != EINC_OK) {
        fprintf(stderr, "status %d: %s\n", status, einc_last_error());
        wrong = 1;
    } else {
        for (size_t n = 0; n < sc; n++) {
            double got = dtype64 ? ((double *)C)[n] : (double)((float *)C)[n];
            if (got != want[n]) wrong++;
        }
    }
    if (wrong)
        fprintf(stderr, "FAIL: %s %dx%dx%d (A %s): %d wrong elements\n", dtype64 ? "f64" : "f32", M,
                K, N, transposed ? "transposed" : "C order", wrong);
    free(a), free(b), free(want), free(A), free(B), free(C);
    return wrong;
}

int main(void) {
    int failed = 0, calls = 0;
    for (int d = 0; d < 2; d++)
        for (int m = 0; m < COUNT(ms); m++)
            for (int n = 0; n < COUNT(ns); n++)
                for (int k = 0; k < COUNT(ks); k++) {
                    /* Every size once in C order; the transposed layout on a third of them. */
                    failed += check(d, ms[m], ks[k], ns[n], 0) != 0;
                    if ((m + n + k) % 3 == 0) failed += check(d, ms[m], ks[k], ns[n], 1) != 0, calls++;
                    calls++;
                }
    printf("tiles: %d calls, %d failed\n", calls, failed);
    return failed != 0;
}
