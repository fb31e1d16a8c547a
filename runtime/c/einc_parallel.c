/* The thread pool of a library built by `einc build` (docs/abi.md, "Threads"; docs/threads.md).
 *
 * `einc build` compiles this file with the C compiler that links the library, so the library
 * still needs only libc (and libpthread where it is a separate library). It is the C twin of
 * einc_runtime::parallel (the JIT's pool): the generated code calls
 * einc_parallel_for(task, closure, n, grain) to run iterations 0..n of a parallel loop; the
 * range is cut into chunks of at least `grain` iterations, at most four per thread, which the
 * calling thread and up to threads - 1 workers claim with an atomic counter.
 *
 * - The thread count is EINC_NUM_THREADS (read when the pool starts) or else the CPUs of the
 *   process's affinity mask. Workers start on the first loop that wants them.
 * - einc_set_parallel_for(fn, ctx) replaces the pool with the host's: every parallel loop then
 *   calls fn(ctx, task, closure, n, grain), which must call task(closure, lo, hi) for disjoint
 *   ranges covering 0..n and return 0 (or a task's non-zero status) once all have returned.
 *   fn == NULL restores this pool.
 * - A worker without a job spins for up to SPIN_NS before it sleeps, and a caller waiting for
 *   the last chunks spins as long before it sleeps, so that consecutive parallel loops do not
 *   pay a wake-up each (the Rust pool does the same).
 * - Concurrent callers each post their own job and run chunks of it themselves, so a call
 *   completes even when every worker is busy.
 * - fork(): a call made in a process other than the one that started the pool runs every chunk
 *   on the calling thread, without touching the pool's lock.
 */

#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define EINC_EXPORT __attribute__((visibility("default")))
#define EINC_HIDDEN __attribute__((visibility("hidden")))

typedef int32_t (*einc_task_fn)(const void *closure, int64_t lo, int64_t hi);
typedef int32_t (*einc_parallel_for_fn)(void *ctx, einc_task_fn task, const void *closure,
                                        int64_t n, int64_t grain);

enum { MAX_THREADS = 256, CHUNKS_PER_THREAD = 4, WORKER_STACK = 4 << 20 };

/* How long a worker spins for the next job (and a caller for its last chunks): 500 us. */
#define SPIN_NS 500000LL

/* One call of einc_parallel_for: lives on its caller's stack until every chunk has finished
 * and no worker refers to it any more (`users` counts the workers inside it). */
struct job {
    einc_task_fn task;
    const void *closure;
    int64_t n, chunk, chunks;
    int64_t next;      /* the next chunk to claim (atomic) */
    int64_t remaining; /* chunks not finished (atomic) */
    int32_t status;    /* first non-zero task status (atomic) */
    int32_t wanted;    /* helpers still wanted (under the pool's lock) */
    int32_t users;     /* workers inside run_chunks (under the pool's lock) */
    struct job *next_job;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work = PTHREAD_COND_INITIALIZER;
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER;
static struct job *jobs; /* jobs wanting helpers: written under the lock, read by spinners */
static int workers;      /* under the lock */
static int threads;      /* 0 until the pool starts */
static pid_t pool_pid;
static pthread_once_t start_once = PTHREAD_ONCE_INIT;

static einc_parallel_for_fn custom_fn;
static void *custom_ctx;

EINC_EXPORT void einc_set_parallel_for(einc_parallel_for_fn fn, void *ctx) {
    __atomic_store_n(&custom_ctx, ctx, __ATOMIC_RELEASE);
    __atomic_store_n(&custom_fn, fn, __ATOMIC_RELEASE);
}

static void start(void) {
    int n = 0;
    const char *env = getenv("EINC_NUM_THREADS");
    if (env != NULL) {
        char *end;
        long v = strtol(env, &end, 10);
        if (end != env && v > 0) n = v > MAX_THREADS ? MAX_THREADS : (int)v;
    }
    if (n == 0) {
        cpu_set_t set;
        n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
        if (n < 1) n = 1;
        if (n > MAX_THREADS) n = MAX_THREADS;
    }
    pool_pid = getpid();
    __atomic_store_n(&threads, n, __ATOMIC_RELEASE);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void pause_cpu(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int job_queued(const struct job *j) {
    (void)j;
    return __atomic_load_n(&jobs, __ATOMIC_ACQUIRE) != NULL;
}

static int job_done(const struct job *j) {
    return __atomic_load_n(&j->remaining, __ATOMIC_ACQUIRE) == 0;
}

/* Spins until ready(j) holds or SPIN_NS have passed. */
static void spin(int (*ready)(const struct job *), const struct job *j) {
    int64_t start = now_ns();
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (ready(j)) return;
            pause_cpu();
        }
        if (now_ns() - start >= SPIN_NS) return;
    }
}

static void run_chunks(struct job *j) {
    for (;;) {
        int64_t c = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (c >= j->chunks) return;
        int64_t lo = c * j->chunk;
        int64_t hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
        int32_t s = j->task(j->closure, lo, hi);
        if (s != 0) {
            int32_t zero = 0;
            __atomic_compare_exchange_n(&j->status, &zero, s, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE);
        }
        if (__atomic_sub_fetch(&j->remaining, 1, __ATOMIC_ACQ_REL) == 0) {
            pthread_mutex_lock(&lock);
            pthread_cond_broadcast(&finished);
            pthread_mutex_unlock(&lock);
        }
    }
}

static void *worker(void *arg) {
    (void)arg;
    for (;;) {
        spin(job_queued, NULL);
        pthread_mutex_lock(&lock);
        while (jobs == NULL) pthread_cond_wait(&work, &lock);
        struct job *j = jobs;
        if (--j->wanted == 0) __atomic_store_n(&jobs, j->next_job, __ATOMIC_RELEASE);
        j->users++;
        pthread_mutex_unlock(&lock);
        run_chunks(j);
        pthread_mutex_lock(&lock);
        if (--j->users == 0) pthread_cond_broadcast(&finished);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

/* Starts workers until there are `want` (as many as can be had). Under the lock. */
static void grow(int want) {
    while (workers < want) {
        pthread_attr_t attr;
        pthread_t t;
        if (pthread_attr_init(&attr) != 0) return;
        pthread_attr_setstacksize(&attr, WORKER_STACK);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int err = pthread_create(&t, &attr, worker, NULL);
        pthread_attr_destroy(&attr);
        if (err != 0) return;
        workers++;
    }
}

EINC_HIDDEN int32_t einc_parallel_for(einc_task_fn task, const void *closure, int64_t n,
                                      int64_t grain) {
    if (n <= 0) return 0;
    einc_parallel_for_fn fn = __atomic_load_n(&custom_fn, __ATOMIC_ACQUIRE);
    if (fn != NULL) {
        return fn(__atomic_load_n(&custom_ctx, __ATOMIC_ACQUIRE), task, closure, n,
                  grain < 1 ? 1 : grain);
    }
    pthread_once(&start_once, start);
    int64_t t = __atomic_load_n(&threads, __ATOMIC_ACQUIRE);
    if (grain < 1) grain = 1;
    int64_t per = (n - 1) / (t * CHUNKS_PER_THREAD) + 1;
    int64_t chunk = grain > per ? grain : per;
    int64_t chunks = (n - 1) / chunk + 1;
    int64_t helpers = t - 1 < chunks - 1 ? t - 1 : chunks - 1;
    if (helpers <= 0 || getpid() != pool_pid) return task(closure, 0, n);

    struct job j = {task, closure, n, chunk, chunks, 0, chunks, 0, 0, 0, NULL};
    pthread_mutex_lock(&lock);
    grow((int)helpers);
    j.wanted = (int32_t)(helpers < workers ? helpers : workers);
    if (j.wanted > 0) {
        j.next_job = jobs;
        __atomic_store_n(&jobs, &j, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&work);
    }
    pthread_mutex_unlock(&lock);
    run_chunks(&j);
    spin(job_done, &j);
    pthread_mutex_lock(&lock);
    /* Withdraw the job if no worker took it up fully, then wait for the chunks and for every
     * worker to leave it (the job is on this stack). */
    if (j.wanted > 0) {
        struct job **p = &jobs;
        while (*p != NULL && *p != &j) p = &(*p)->next_job;
        if (*p == &j) __atomic_store_n(p, j.next_job, __ATOMIC_RELEASE);
        j.wanted = 0;
    }
    while (__atomic_load_n(&j.remaining, __ATOMIC_ACQUIRE) != 0 || j.users != 0)
        pthread_cond_wait(&finished, &lock);
    pthread_mutex_unlock(&lock);
    return __atomic_load_n(&j.status, __ATOMIC_ACQUIRE);
}
