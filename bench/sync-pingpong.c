/* Floor for bench/sync.bench.mjs: two processes alternating on two futex words
 * in a shared mapping (the same set/wait/clear protocol as the Event ping-pong).
 * Compiled into a temp dir at bench time; prints microseconds per round trip. */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void fwait(atomic_int *a, int v) { syscall(SYS_futex, a, FUTEX_WAIT, v, NULL, NULL, 0); }
static void fwake(atomic_int *a) { syscall(SYS_futex, a, FUTEX_WAKE, 1, NULL, NULL, 0); }

int main(int argc, char **argv) {
  int rounds = argc > 1 ? atoi(argv[1]) : 10000, warm = 200;
  atomic_int *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  atomic_int *a = &m[0], *b = &m[16];
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < rounds + warm; i++) {
      while (atomic_load(a) == 0) fwait(a, 0);
      atomic_store(a, 0);
      atomic_store(b, 1);
      fwake(b);
    }
    _exit(0);
  }
  struct timespec t0, t1;
  for (int i = 0; i < rounds + warm; i++) {
    if (i == warm) clock_gettime(CLOCK_MONOTONIC, &t0);
    atomic_store(a, 1);
    fwake(a);
    while (atomic_load(b) == 0) fwait(b, 0);
    atomic_store(b, 0);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  waitpid(pid, NULL, 0);
  double us = ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e3 / rounds;
  printf("%f\n", us);
  return 0;
}
