/* attention.c: calls the attention kernel of libattention.so (built by
 * `einc build examples/attention.ein -o out/`) from C, checks the result against a direct
 * computation in double precision, and shows the status code of a call with a wrong shape and
 * the library's explanation of it (einc_last_error).
 *
 * Build and run: see the Makefile in this directory (`make run`). */
#include "attention.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

enum { T = 5, D = 4, K = 3 };

/* The reference: Q = X WQ, Kx = X WK, V = X WV, S = Q Kx^T / sqrt(K), P = softmax over j,
 * O = P V, written out with plain loops. */
static void reference(const float X[T][D], const float WQ[D][K], const float WK[D][K],
                      const float WV[D][K], double O[T][K]) {
    double Q[T][K], Kx[T][K], V[T][K], S[T][T];
    for (int t = 0; t < T; t++)
        for (int a = 0; a < K; a++) {
            Q[t][a] = Kx[t][a] = V[t][a] = 0;
            for (int d = 0; d < D; d++) {
                Q[t][a] += (double)X[t][d] * WQ[d][a];
                Kx[t][a] += (double)X[t][d] * WK[d][a];
                V[t][a] += (double)X[t][d] * WV[d][a];
            }
        }
    for (int i = 0; i < T; i++) {
        double max = -INFINITY, sum = 0;
        for (int j = 0; j < T; j++) {
            S[i][j] = 0;
            for (int a = 0; a < K; a++) S[i][j] += Q[i][a] * Kx[j][a];
            S[i][j] /= sqrt((double)K);
            if (S[i][j] > max) max = S[i][j];
        }
        for (int j = 0; j < T; j++) sum += exp(S[i][j] - max);
        for (int a = 0; a < K; a++) {
            O[i][a] = 0;
            for (int j = 0; j < T; j++) O[i][a] += exp(S[i][j] - max) / sum * V[j][a];
        }
    }
}

/* A C-order descriptor for a 2-D float array. */
static einc_tensor matrix(void *data, const int64_t shape[2], const int64_t strides[2]) {
    einc_tensor t = {data, EINC_F32, 2, shape, strides};
    return t;
}

int main(void) {
    if (einc_abi_version() != EINC_ABI_VERSION) {
        fprintf(stderr, "library ABI version %d, header version %d\n", einc_abi_version(),
                EINC_ABI_VERSION);
        return 1;
    }
    const einc_kernel_info *info = einc_attention_info();
    printf("%s: %d inputs, %d outputs; dims", info->name, info->ninputs,
           info->nargs - info->ninputs);
    for (int d = 0; d < info->ndims; d++) printf(" %s", info->dim_names[d]);
    printf("\n");

    float X[T][D], WQ[D][K], WK[D][K], WV[D][K], O[T][K];
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) X[t][d] = (float)sin(1.0 + t * D + d);
    for (int d = 0; d < D; d++)
        for (int a = 0; a < K; a++) {
            WQ[d][a] = (float)(0.5 * cos(0.3 * d + 0.7 * a));
            WK[d][a] = (float)(0.5 * sin(0.2 * d - 0.4 * a));
            WV[d][a] = (float)(0.1 * (d - a) + 0.05);
        }

    const int64_t x_shape[2] = {T, D}, x_strides[2] = {D, 1};
    const int64_t w_shape[2] = {D, K}, w_strides[2] = {K, 1};
    const int64_t o_shape[2] = {T, K}, o_strides[2] = {K, 1};
    einc_tensor args[5] = {
        matrix(X, x_shape, x_strides),   matrix(WQ, w_shape, w_strides),
        matrix(WK, w_shape, w_strides),  matrix(WV, w_shape, w_strides),
        matrix(O, o_shape, o_strides),
    };
    int32_t status = einc_attention(args, 5);
    if (status != EINC_OK) {
        fprintf(stderr, "einc_attention failed with status %d\n", status);
        return 1;
    }
    double want[T][K];
    reference(X, WQ, WK, WV, want);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int a = 0; a < K; a++) {
            double err = fabs(O[t][a] - want[t][a]);
            if (err > worst) worst = err;
        }
    printf("O[0] = [%.6f, %.6f, %.6f]; max |O - reference| = %.2e\n", O[0][0], O[0][1],
           O[0][2], worst);
    if (!(worst <= 1e-5)) {
        fprintf(stderr, "FAIL: the result differs from the reference\n");
        return 1;
    }

    /* A wrong shape: WK claims D + 1 rows while X bound D. The kernel must refuse before
     * writing anything. */
    const int64_t bad_shape[2] = {D + 1, K};
    float WK_big[D + 1][K];
    memset(WK_big, 0, sizeof WK_big);
    args[2] = matrix(WK_big, bad_shape, w_strides);
    float before[T][K];
    memcpy(before, O, sizeof O);
    status = einc_attention(args, 5);
    /* After a failed call, einc_last_error() says which argument, axis and dim are at fault. */
    const char *why = einc_last_error();
    printf("wrong shape: status %d (EINC_BAD_SHAPE is %d): %s\n", status, EINC_BAD_SHAPE,
           why ? why : "(no message)");
    if (status != EINC_BAD_SHAPE || memcmp(before, O, sizeof O) != 0) {
        fprintf(stderr, "FAIL: expected EINC_BAD_SHAPE and an untouched output\n");
        return 1;
    }
    if (!why || !strstr(why, "input `WK` axis 0 has extent 5, but dim `D` is 4")) {
        fprintf(stderr, "FAIL: unexpected message: %s\n", why ? why : "(null)");
        return 1;
    }
    printf("ok\n");
    return 0;
}
