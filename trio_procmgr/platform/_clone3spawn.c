/*
 * trio_procmgr.platform._clone3spawn: spawn a child directly into its cgroup.
 *
 * Why: the pure-Python spawn moves the daemon itself into the service's cgroup around
 * Popen. Each migration takes the kernel's cgroup_threadgroup_rwsem for writing, which
 * waits for an RCU grace period (5-14 ms here) whenever migrations are rare -- most of a
 * restart's latency. clone3(CLONE_INTO_CGROUP) places the child at birth under the read
 * side of that lock: no migration, no grace period. CLONE_PIDFD hands back the pidfd in
 * the same call (no pidfd_open race).
 *
 * The child shares the parent's memory until it execs (CLONE_VM | CLONE_VFORK, as glibc's
 * posix_spawn and CPython's vfork path do): a plain fork of a daemon with tens of MiB
 * resident costs milliseconds of page-table copying and copy-on-write faults, vfork costs
 * microseconds. So the child runs on a stack of its own (a small assembly trampoline,
 * x86-64 only: elsewhere the module exports no spawn() and the daemon keeps its portable
 * path), only async-signal-safe calls, with every signal blocked in the parent around
 * the clone and handlers reset to default by the clone itself (CLONE_CLEAR_SIGHAND).
 * Credentials are changed with raw setgroups/setresgid/setresuid syscalls, not glibc's
 * wrappers: those broadcast to every thread glibc knows of. A failure before or at
 * execve is written into the shared plan as (stage, errno); the parent, resumed when
 * the child has exec'd or exited, reaps such a child and raises OSError, so the caller
 * sees exactly what Popen would say.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <pthread.h>
#include <sys/mman.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#define DD_CLONE_VM 0x00000100ULL
#define DD_CLONE_VFORK 0x00004000ULL
#define DD_CLONE_PIDFD 0x00001000ULL
#define DD_CHILD_STACK (64 * 1024)
#define DD_CLONE_INTO_CGROUP 0x200000000ULL
#define DD_CLOSE_RANGE_CLOEXEC (1U << 2)
#define DD_CLONE_FILES 0x00000400ULL
#define DD_CLONE_CLEAR_SIGHAND 0x100000000ULL
#define DD_CLOSE_RANGE_UNSHARE (1U << 1)

/* struct clone_args, CLONE_ARGS_SIZE_VER2 (Linux 5.7+: has `cgroup`). */
struct dd_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal;
    uint64_t stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};

enum stage { STAGE_SETUP = 1, STAGE_CWD = 2, STAGE_CREDS = 3, STAGE_EXEC = 4 };

struct plan {
    const char *exe;
    char **argv;
    char **envp;
    const char *cwd;
    int stdio[3];          /* -1: keep the daemon's */
    const int *pass_fds;
    Py_ssize_t n_pass_fds;
    long uid, gid;         /* -1: unchanged */
    const gid_t *groups;
    Py_ssize_t n_groups;   /* -1: unchanged */
    int new_session;
    /* >= 0: the child is cloned sharing the daemon's fd table (CLONE_FILES) and first
     * takes a private copy of its fds below this one only (close_range UNSHARE), so a
     * spawn costs the same with 10 or 15,000 fds open; stdio must then come from there. */
    int unshare_from;
    /* Written by the child (shared memory) when it fails: stage and errno. */
    volatile int fail_stage, fail_errno;
};

static void child_fail(struct plan *p, int stage)
{
    p->fail_errno = errno;
    p->fail_stage = stage;
    _exit(127);
}

static int clear_cloexec(int fd)
{
    int flags = fcntl(fd, F_GETFD);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
}

static int child_main(void *arg)
{
    struct plan *p = arg;
    sigset_t none;
    struct sigaction dfl;
    Py_ssize_t i;
    int fd;

    /* Before anything touches an fd: while the table is shared, a dup2 would be the
     * daemon's. */
    if (p->unshare_from >= 0 &&
        syscall(__NR_close_range, (unsigned int)p->unshare_from, ~0U, DD_CLOSE_RANGE_UNSHARE) < 0)
        child_fail(p, STAGE_SETUP);
    /* The parent's handlers would run on shared memory: the clone reset every handled
     * signal to default (CLONE_CLEAR_SIGHAND, Linux 5.5: one flag instead of ~64
     * sigaction calls here), before anything is unblocked (the parent blocked everything
     * around the clone). It keeps SIG_IGN, as exec does: Python ignores SIGPIPE and
     * SIGXFSZ, so those two go back to default here. */
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigaction(SIGXFSZ, &dfl, NULL);
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0)
        child_fail(p, STAGE_SETUP);
    if (p->new_session && setsid() < 0)
        child_fail(p, STAGE_SETUP);
    for (fd = 0; fd < 3; fd++) {
        int src = p->stdio[fd];
        if (src < 0)
            continue;
        if (src == fd) {
            if (clear_cloexec(fd) < 0)
                child_fail(p, STAGE_SETUP);
        } else if (dup2(src, fd) < 0) {
            child_fail(p, STAGE_SETUP);
        }
    }
    if (p->cwd != NULL && chdir(p->cwd) < 0)
        child_fail(p, STAGE_CWD);
    if (p->n_groups >= 0 && syscall(SYS_setgroups, (size_t)p->n_groups, p->groups) < 0)
        child_fail(p, STAGE_CREDS);
    if (p->gid >= 0 && syscall(SYS_setresgid, (gid_t)p->gid, (gid_t)p->gid, (gid_t)p->gid) < 0)
        child_fail(p, STAGE_CREDS);
    if (p->uid >= 0 && syscall(SYS_setresuid, (uid_t)p->uid, (uid_t)p->uid, (uid_t)p->uid) < 0)
        child_fail(p, STAGE_CREDS);
    /* Nothing of the daemon's survives exec except what is meant for the child. */
    if (syscall(__NR_close_range, 3U, ~0U, DD_CLOSE_RANGE_CLOEXEC) < 0)
        child_fail(p, STAGE_SETUP);
    for (i = 0; i < p->n_pass_fds; i++)
        if (clear_cloexec(p->pass_fds[i]) < 0)
            child_fail(p, STAGE_SETUP);
    execve(p->exe, p->argv, p->envp);
    child_fail(p, STAGE_EXEC);
    return 127;
}

#if defined(__x86_64__)
#define DD_HAVE_TRAMPOLINE 1
/* clone3 with the child running fn(arg) on the stack given in cargs, then exit(2). */
static long clone3_call(struct dd_clone_args *cargs, int (*fn)(void *), void *arg)
{
    long ret;
    register long r12 __asm__("r12") = (long)fn;
    register long r13 __asm__("r13") = (long)arg;
    __asm__ volatile(
        "syscall\n\t"
        "test %%rax, %%rax\n\t"
        "jnz 1f\n\t"
        "xor %%ebp, %%ebp\n\t"
        "mov %%r13, %%rdi\n\t"
        "call *%%r12\n\t"
        "mov %%eax, %%edi\n\t"
        "mov $60, %%eax\n\t"
        "syscall\n\t"
        "hlt\n\t"
        "1:\n\t"
        : "=a"(ret)
        : "a"((long)__NR_clone3), "D"(cargs), "S"(sizeof *cargs), "r"(r12), "r"(r13)
        : "rcx", "r11", "memory");
    return ret;
}
#endif

/* A NULL-terminated char* array borrowing from a sequence of bytes objects. */
static char **bytes_array(PyObject *seq, const char *what)
{
    Py_ssize_t n, i;
    char **out;
    if (!PyList_Check(seq) && !PyTuple_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of bytes", what);
        return NULL;
    }
    n = PySequence_Fast_GET_SIZE(seq);
    out = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    if (out == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(item)) {
            PyMem_Free(out);
            PyErr_Format(PyExc_TypeError, "%s items must be bytes", what);
            return NULL;
        }
        out[i] = PyBytes_AS_STRING(item);
    }
    return out;
}

static int int_array(PyObject *seq, int **out, Py_ssize_t *n, const char *what)
{
    Py_ssize_t i;
    *out = NULL;
    *n = -1;
    if (seq == Py_None)
        return 0;
    if (!PyList_Check(seq) && !PyTuple_Check(seq)) {
        PyErr_Format(PyExc_TypeError, "%s must be a list of ints or None", what);
        return -1;
    }
    *n = PySequence_Fast_GET_SIZE(seq);
    *out = PyMem_Calloc((size_t)*n + 1, sizeof(int));
    if (*out == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (i = 0; i < *n; i++) {
        long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
        if (v == -1 && PyErr_Occurred()) {
            PyMem_Free(*out);
            *out = NULL;
            return -1;
        }
        (*out)[i] = (int)v;
    }
    return 0;
}

#ifdef DD_HAVE_TRAMPOLINE
PyDoc_STRVAR(spawn_doc,
"spawn(exe, argv, envp, cwd, stdio, pass_fds, uid, gid, groups, new_session, cgroup_fd,\n"
"      unshare_from=-1)\n"
"-> (pid, pidfd)\n\n"
"vfork+exec `exe` with clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD, and\n"
"CLONE_INTO_CGROUP when cgroup_fd >= 0).\n"
"exe, cwd: bytes (cwd may be None); argv, envp: lists of bytes; stdio: three fds (-1 keeps\n"
"the daemon's); pass_fds: fds the child keeps; uid/gid: -1 unchanged; groups: list or None.\n"
"Raises OSError (with .filename set to cwd or exe) when the child could not be set up or\n"
"exec'd; the failed child is reaped before raising.\n"
"unshare_from >= 0: clone with CLONE_FILES and copy only the fds below it into the child\n"
"(close_range CLOSE_RANGE_UNSHARE, Linux 5.9); stdio and pass_fds must be below it.");

static PyObject *dd_spawn(PyObject *self, PyObject *args)
{
    PyObject *exe_o, *argv_o, *envp_o, *cwd_o, *stdio_o, *pass_o, *groups_o;
    long uid, gid;
    int new_session, cgroup_fd, unshare_from = -1;
    struct plan p;
    struct dd_clone_args cargs;
    int *pass_fds = NULL, *groups_i = NULL;
    gid_t *groups = NULL;
    Py_ssize_t n_pass = 0, n_groups = -1, i;
    int pidfd = -1, saved_errno;
    long pid;
    void *stack = NULL;
    sigset_t all, saved_mask;
    PyObject *result = NULL;
    PyObject *argv_fast = NULL, *envp_fast = NULL;

    (void)self;
    if (!PyArg_ParseTuple(args, "SOOOOOllOpi|i", &exe_o, &argv_o, &envp_o, &cwd_o, &stdio_o,
                          &pass_o, &uid, &gid, &groups_o, &new_session, &cgroup_fd,
                          &unshare_from))
        return NULL;
    memset(&p, 0, sizeof p);
    p.unshare_from = unshare_from;
    p.argv = p.envp = NULL;
    argv_fast = PySequence_Fast(argv_o, "argv must be a list");
    envp_fast = PySequence_Fast(envp_o, "envp must be a list");
    if (argv_fast == NULL || envp_fast == NULL)
        goto done;
    p.exe = PyBytes_AS_STRING(exe_o);
    if ((p.argv = bytes_array(argv_fast, "argv")) == NULL)
        goto done;
    if ((p.envp = bytes_array(envp_fast, "envp")) == NULL)
        goto done;
    if (cwd_o != Py_None) {
        if (!PyBytes_Check(cwd_o)) {
            PyErr_SetString(PyExc_TypeError, "cwd must be bytes or None");
            goto done;
        }
        p.cwd = PyBytes_AS_STRING(cwd_o);
    }
    if (!PyArg_ParseTuple(stdio_o, "iii", &p.stdio[0], &p.stdio[1], &p.stdio[2]))
        goto done;
    if (int_array(pass_o, &pass_fds, &n_pass, "pass_fds") < 0)
        goto done;
    p.pass_fds = pass_fds;
    p.n_pass_fds = n_pass < 0 ? 0 : n_pass;
    if (int_array(groups_o, &groups_i, &n_groups, "groups") < 0)
        goto done;
    if (n_groups >= 0) {
        groups = PyMem_Calloc((size_t)n_groups + 1, sizeof(gid_t));
        if (groups == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        for (i = 0; i < n_groups; i++)
            groups[i] = (gid_t)groups_i[i];
    }
    p.groups = groups;
    p.n_groups = n_groups;
    p.uid = uid;
    p.gid = gid;
    p.new_session = new_session;

    stack = mmap(NULL, DD_CHILD_STACK, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        stack = NULL;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    memset(&cargs, 0, sizeof cargs);
    cargs.flags = DD_CLONE_VM | DD_CLONE_VFORK | DD_CLONE_PIDFD | DD_CLONE_CLEAR_SIGHAND |
                  (cgroup_fd >= 0 ? DD_CLONE_INTO_CGROUP : 0) |
                  (unshare_from >= 0 ? DD_CLONE_FILES : 0);
    cargs.pidfd = (uint64_t)(uintptr_t)&pidfd;
    cargs.exit_signal = SIGCHLD;
    cargs.stack = (uint64_t)(uintptr_t)stack;
    cargs.stack_size = DD_CHILD_STACK;
    cargs.cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0;

    /* The GIL is released while this thread waits for the child to exec (vfork suspends
     * only the calling thread): another thread may prepare or make the next spawn. The
     * child touches nothing but `p` and its own stack, both owned by this call. */
    Py_BEGIN_ALLOW_THREADS
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved_mask);
    pid = clone3_call(&cargs, child_main, &p);   /* returns when the child exec'd or exited */
    saved_errno = errno;
    pthread_sigmask(SIG_SETMASK, &saved_mask, NULL);
    Py_END_ALLOW_THREADS
    if (pid < 0) {
        errno = (int)-pid;
        PyErr_SetFromErrno(PyExc_OSError);
        goto done;
    }
    (void)saved_errno;
    if (p.fail_stage == 0) {
        result = Py_BuildValue("li", pid, pidfd);
        goto done;
    }
    /* The child failed before or at execve and called _exit(127): reap it. */
    {
        int status;
        while (waitpid((pid_t)pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    close(pidfd);
    {
        PyObject *filename = p.fail_stage == STAGE_CWD && cwd_o != Py_None ? cwd_o : exe_o;
        PyObject *err = PyObject_CallFunction(PyExc_OSError, "isO", p.fail_errno,
                                              strerror(p.fail_errno), filename);
        if (err != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(err), err);
            Py_DECREF(err);
        }
    }
done:
    if (stack != NULL)
        munmap(stack, DD_CHILD_STACK);
    PyMem_Free(p.argv);
    PyMem_Free(p.envp);
    PyMem_Free(pass_fds);
    PyMem_Free(groups_i);
    PyMem_Free(groups);
    Py_XDECREF(argv_fast);
    Py_XDECREF(envp_fast);
    return result;
}
#endif

static PyMethodDef methods[] = {
#ifdef DD_HAVE_TRAMPOLINE
    {"spawn", dd_spawn, METH_VARARGS, spawn_doc},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_clone3spawn",
    "clone3(CLONE_INTO_CGROUP | CLONE_PIDFD) spawning for dd-procmgrd.", -1, methods,
};

PyMODINIT_FUNC PyInit__clone3spawn(void)
{
    return PyModule_Create(&module);
}
