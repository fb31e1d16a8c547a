/* threads.c: the parallel loops of libattention.so (built from ../attention.ein) give the same
 * bits on every pool: a host pool plugged in with einc_set_parallel_for that runs everything
 * on the caller, one that runs the chunks in reverse order, one that runs them on three
 * threads of its own, and the library's own pool (EINC_NUM_THREADS threads); also when four
 * threads call the kernel at once (docs/abi.md, "Threads"). */
#include "attention.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { T = 300, D = 64, K = 40, CALLERS = 4 };

static float X[T][D], WQ[D][K], WK[D][K], WV[D][K];
static const int64_t x_shape[2] = {T, D}, x_strides[2] = {D, 1};
static const int64_t w_shape[2] = {D, K}, w_strides[2] = {K, 1};
static const int64_t o_shape[2] = {T, K}, o_strides[2] = {K, 1};

static int run(float out[T][K]) {
    einc_tensor args[5] = {
        {X, EINC_F32, 2, x_shape, x_strides},   {WQ, EINC_F32, 2, w_shape, w_strides},
        {WK, EINC_F32, 2, w_shape, w_strides},  {WV, EINC_F32, 2, w_shape, w_strides},
        {out, EINC_F32, 2, o_shape, o_strides},
    };
    int32_t status = einc_attention(args, 5);
    if (status != EINC_OK) fprintf(stderr, "einc_attention: %d: %s\n", status, einc_last_error());
    return status;
}

/* The host pools. Each counts the parallel loops it ran (only the main thread calls them). */
static long loops_run;

static int32_t on_caller(void *ctx, einc_task_fn task, const void *closure, int64_t n,
                         int64_t grain) {
    (void)ctx, (void)grain;
    loops_run++;
    return task(closure, 0, n);
}

static int32_t reversed(void *ctx, einc_task_fn task, const void *closure, int64_t n,
                        int64_t grain) {
    (void)ctx;
    loops_run++;
    for (int64_t lo = (n - 1) / grain * grain; lo >= 0; lo -= grain) {
        int32_t s = task(closure, lo, lo + grain < n ? lo + grain : n);
        if (s != 0) return s;
    }
    return 0;
}

struct share {
    einc_task_fn task;
    const void *closure;
    int64_t n, grain, first;
    int32_t status;
};

/* Runs chunks first, first + 3, first + 6, ... */
static void *share_thread(void *arg) {
    struct share *s = arg;
    for (int64_t c = s->first; c * s->grain < s->n; c += 3) {
        int64_t lo = c * s->grain, hi = lo + s->grain < s->n ? lo + s->grain : s->n;
        int32_t st = s->task(s->closure, lo, hi);
        if (st != 0) s->status = st;
    }
    return NULL;
}

static int32_t three_threads(void *ctx, einc_task_fn task, const void *closure, int64_t n,
                             int64_t grain) {
    (void)ctx;
    loops_run++;
    struct share s[3];
    pthread_t t[3];
    for (int i = 0; i < 3; i++) {
        s[i] = (struct share){task, closure, n, grain, i, 0};
        if (pthread_create(&t[i], NULL, share_thread, &s[i]) != 0) return 1;
    }
    int32_t status = 0;
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        if (s[i].status != 0) status = s[i].status;
    }
    return status;
}

static float want[T][K], got[T][K], mine[CALLERS][T][K];

static int same(float a[T][K], const char *what) {
    if (memcmp(a, want, sizeof want) != 0) {
        fprintf(stderr, "FAIL: %s differs from the caller-only pool\n", what);
        return 0;
    }
    printf("%s: same bits\n", what);
    return 1;
}

static void *caller(void *arg) {
    float(*out)[K] = arg;
    for (int r = 0; r < 3; r++)
        if (run(out) != EINC_OK || memcmp(out, want, sizeof want) != 0) return out;
    return NULL;
}

int main(void) {
    unsigned seed = 1;
    float *all[4] = {&X[0][0], &WQ[0][0], &WK[0][0], &WV[0][0]};
    size_t len[4] = {T * D, D * K, D * K, D * K};
    for (int a = 0; a < 4; a++)
        for (size_t i = 0; i < len[a]; i++) {
            seed = seed * 1103515245u + 12345u;
            all[a][i] = (float)((seed >> 16) % 2001) / 1000.0f - 1.0f;
        }

    einc_set_parallel_for(on_caller, NULL);
    if (run(want) != EINC_OK) return 1;
    long loops = loops_run;
    printf("caller-only pool: %ld parallel loops\n", loops);
    if (loops == 0) {
        fprintf(stderr, "FAIL: the library ran no parallel loop through the host pool\n");
        return 1;
    }
    einc_set_parallel_for(reversed, NULL);
    if (run(got) != EINC_OK || !same(got, "chunks in reverse order")) return 1;
    einc_set_parallel_for(three_threads, NULL);
    if (run(got) != EINC_OK || !same(got, "three host threads")) return 1;
    if (loops_run != 3 * loops) {
        fprintf(stderr, "FAIL: %ld loops ran through the host pools, not %ld\n", loops_run,
                3 * loops);
        return 1;
    }
    einc_set_parallel_for(NULL, NULL);
    const char *env = getenv("EINC_NUM_THREADS");
    char what[64];
    snprintf(what, sizeof what, "the library's pool (EINC_NUM_THREADS=%s)", env ? env : "unset");
    if (run(got) != EINC_OK || !same(got, what)) return 1;

    pthread_t t[CALLERS];
    for (int i = 0; i < CALLERS; i++)
        if (pthread_create(&t[i], NULL, caller, mine[i]) != 0) return 1;
    int bad = 0;
    for (int i = 0; i < CALLERS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad |= r != NULL;
    }
    if (bad) {
        fprintf(stderr, "FAIL: a concurrent caller got other bits\n");
        return 1;
    }
    printf("%d concurrent callers: same bits\nok\n", CALLERS);
    return 0;
}
