/*
 * The Linux counterparts of the platform's primitives, run as /init of a
 * Linux guest booted in the platform's deterministic emulator (TCG,
 * -icount: every guest instruction advances the virtual clock by the same
 * few ns), so a time read with clock_gettime here counts instructions.
 * Built static by the runner (xtask/src/bench/linux/) and packed alone
 * into the initramfs; it powers the machine off when done.
 *
 * Each operation's loop runs at two lengths, N and 2N iterations, and so
 * does an empty loop of the same shape. The runner takes
 *     ((t_op(2N) - t_op(N)) - (t_empty(2N) - t_empty(N))) / N
 * as the operation's cost: the difference of two lengths cancels every
 * fixed cost (the two clock reads, the loop's set-up, a first-touch page
 * fault), the empty loop's difference removes the loop's own increment,
 * compare and branch. What is left is N operations' worth of time; the
 * timer ticks that land in it stay in (a few thousand instructions every
 * 4 ms of virtual time at HZ=250), as they do in the platform's figures.
 *
 * Output, one line per repetition and operation, read by the runner:
 *     LINUXBENCH op=<name> n=<N> op_n=<ns> op_2n=<ns> empty_n=<ns> empty_2n=<ns>
 * and a last line "LINUXBENCH end" (a run without it did not finish).
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* Repetitions of every measurement (the runner takes the median). */
#define REPS 3

static uint64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* Keeps the compiler from removing or merging an otherwise empty loop. */
#define BARRIER() __asm__ volatile("" ::: "memory")

static uint64_t time_empty(long n)
{
    uint64_t t = now_ns();
    for (long i = 0; i < n; i++)
        BARRIER();
    return now_ns() - t;
}

/* ---- the operations: each `op_<name>(n)` runs n of them, timed ---- */

static uint64_t op_getpid(long n)
{
    uint64_t t = now_ns();
    for (long i = 0; i < n; i++) {
        syscall(SYS_getpid);
        BARRIER();
    }
    return now_ns() - t;
}

static uint64_t op_sched_yield(long n)
{
    uint64_t t = now_ns();
    for (long i = 0; i < n; i++) {
        sched_yield();
        BARRIER();
    }
    return now_ns() - t;
}

static void on_trap(int sig) { (void)sig; }

/* int3 -> the kernel's #BP entry -> SIGTRAP handler -> sigreturn -> back. */
static uint64_t op_sigtrap_roundtrip(long n)
{
    uint64_t t = now_ns();
    for (long i = 0; i < n; i++)
        __asm__ volatile("int3" ::: "memory");
    return now_ns() - t;
}

static ucontext_t main_ctx, co_ctx;
static char co_stack[64 * 1024];

static void co_body(void)
{
    for (;;)
        swapcontext(&co_ctx, &main_ctx);
}

/* One round trip: main -> coroutine -> main, two swapcontext calls (each
 * saves and restores the signal mask: one rt_sigprocmask system call). */
static uint64_t op_swapcontext_pair(long n)
{
    uint64_t t = now_ns();
    for (long i = 0; i < n; i++)
        swapcontext(&main_ctx, &co_ctx);
    return now_ns() - t;
}

static void pin_to_cpu0(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(0, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* Two processes pinned to one CPU pass a byte back and forth through two
 * pipes: one round trip per iteration. */
static uint64_t op_pipe_pingpong(long n)
{
    int to_child[2], to_parent[2];
    char b = 0;
    if (pipe(to_child) || pipe(to_parent)) {
        perror("pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid == 0) {
        pin_to_cpu0();
        for (long i = 0; i < n; i++) {
            if (read(to_child[0], &b, 1) != 1 || write(to_parent[1], &b, 1) != 1)
                _exit(1);
        }
        _exit(0);
    }
    /* One round trip outside the timing: the child is running and pinned. */
    uint64_t t = now_ns();
    for (long i = 0; i < n; i++) {
        if (write(to_child[1], &b, 1) != 1 || read(to_parent[0], &b, 1) != 1) {
            perror("pipe ping-pong");
            exit(1);
        }
    }
    uint64_t d = now_ns() - t;
    waitpid(pid, NULL, 0);
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
    return d;
}

/* Two threads of one process hand a turn back and forth through one futex
 * word: 0 = the main thread's turn, 1 = the peer's. One round trip per
 * iteration (two FUTEX_WAKE, two FUTEX_WAIT that sleep). */
static volatile int turn;
static long futex_rounds;

static void futex_wait_while(int v)
{
    while (__atomic_load_n(&turn, __ATOMIC_ACQUIRE) == v)
        syscall(SYS_futex, &turn, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}

static void futex_pass(int v)
{
    __atomic_store_n(&turn, v, __ATOMIC_RELEASE);
    syscall(SYS_futex, &turn, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *futex_peer(void *arg)
{
    (void)arg;
    for (long i = 0; i < futex_rounds; i++) {
        futex_wait_while(0);
        futex_pass(0);
    }
    return NULL;
}

static uint64_t op_futex_pingpong(long n)
{
    pthread_t peer;
    turn = 0;
    futex_rounds = n;
    if (pthread_create(&peer, NULL, futex_peer, NULL)) {
        perror("pthread_create");
        exit(1);
    }
    uint64_t t = now_ns();
    for (long i = 0; i < n; i++) {
        futex_pass(1);
        futex_wait_while(1);
    }
    uint64_t d = now_ns() - t;
    pthread_join(peer, NULL);
    return d;
}

/* ---- driver ---- */

struct op {
    const char *name;
    uint64_t (*run)(long n);
    long n; /* iterations of the shorter loop; the longer runs 2n */
};

static const struct op OPS[] = {
    {"getpid", op_getpid, 20000},
    {"sigtrap_roundtrip", op_sigtrap_roundtrip, 4000},
    {"sched_yield", op_sched_yield, 10000},
    {"swapcontext_pair", op_swapcontext_pair, 10000},
    {"pipe_pingpong", op_pipe_pingpong, 1000},
    {"futex_pingpong", op_futex_pingpong, 1000},
};

static void power_off(void)
{
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    for (;;)
        pause();
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    pin_to_cpu0();

    struct sigaction act;
    memset(&act, 0, sizeof act);
    act.sa_handler = on_trap;
    sigemptyset(&act.sa_mask);
    sigaction(SIGTRAP, &act, NULL);

    getcontext(&co_ctx);
    co_ctx.uc_stack.ss_sp = co_stack;
    co_ctx.uc_stack.ss_size = sizeof co_stack;
    co_ctx.uc_link = NULL;
    makecontext(&co_ctx, co_body, 0);

    printf("LINUXBENCH start\n");
    for (int rep = 0; rep < REPS; rep++) {
        for (size_t k = 0; k < sizeof OPS / sizeof OPS[0]; k++) {
            const struct op *o = &OPS[k];
            /* A warm-up pass: code and data paged in, caches of the
             * kernel's own (dentry, slab) filled. */
            o->run(o->n / 10 + 1);
            uint64_t op_n = o->run(o->n);
            uint64_t op_2n = o->run(2 * o->n);
            uint64_t empty_n = time_empty(o->n);
            uint64_t empty_2n = time_empty(2 * o->n);
            printf("LINUXBENCH op=%s n=%ld op_n=%llu op_2n=%llu empty_n=%llu empty_2n=%llu\n",
                   o->name, o->n, (unsigned long long)op_n, (unsigned long long)op_2n,
                   (unsigned long long)empty_n, (unsigned long long)empty_2n);
        }
    }
    printf("LINUXBENCH end\n");
    power_off();
    return 0;
}
