/* matmul.c: calls the f64 matmul kernel of libmatmul.so (built from matmul.ein in this
 * directory) on a transposed view of A and checks every element against plain loops. */
#include "matmul.h"

#include <math.h>
#include <stdio.h>

enum { M = 3, K = 4, N = 5 };

int main(void) {
    /* At holds A transposed: A[i][k] = At[k][i], so A's strides are {1, M}. */
    double At[K][M], B[K][N], C[M][N];
    for (int k = 0; k < K; k++) {
        for (int i = 0; i < M; i++) At[k][i] = 0.25 * (i + 1) - 0.5 * k;
        for (int j = 0; j < N; j++) B[k][j] = (k * N + j) % 7 - 3.0;
    }
    const int64_t a_shape[2] = {M, K}, a_strides[2] = {1, M};
    const int64_t b_shape[2] = {K, N}, b_strides[2] = {N, 1};
    const int64_t c_shape[2] = {M, N}, c_strides[2] = {N, 1};
    einc_tensor args[3] = {
        {At, EINC_F64, 2, a_shape, a_strides},
        {B, EINC_F64, 2, b_shape, b_strides},
        {C, EINC_F64, 2, c_shape, c_strides},
    };
    int32_t status = einc_matmul(args, 3);
    if (status != EINC_OK) {
        fprintf(stderr, "einc_matmul failed with status %d\n", status);
        return 1;
    }
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double want = 0;
            for (int k = 0; k < K; k++) want += At[k][i] * B[k][j];
            double err = fabs(C[i][j] - want);
            if (err > worst) worst = err;
        }
    printf("matmul: C[0] = [%g, %g, %g, %g, %g]; max error %.2e\n", C[0][0], C[0][1], C[0][2],
           C[0][3], C[0][4], worst);
    if (!(worst <= 1e-12)) {
        fprintf(stderr, "FAIL: the result differs from the reference\n");
        return 1;
    }
    /* A wrong dtype: B described as f32. */
    args[1].dtype = EINC_F32;
    status = einc_matmul(args, 3);
    printf("wrong dtype: status %d (EINC_BAD_DTYPE is %d): %s\n", status, EINC_BAD_DTYPE,
           einc_last_error());
    if (status != EINC_BAD_DTYPE) return 1;
    printf("ok\n");
    return 0;
}
