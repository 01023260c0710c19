/*
 * l0_sim.c - the SIMULATED L0.  Not a hypervisor: it runs the L0 state
 * machine (l0_model.c) on a state file so that tests and development
 * machines without an L0 behave like a node with one.
 *
 * Like a real L0 outlives its L1s, the state outlives every caller:
 *  - one exclusive flock on "<path>.lock" per call serializes processes;
 *  - updates are written to "<path>.tmp", fsync'ed, then renamed over the
 *    state file (and the directory fsync'ed), so a SIGKILL at any instant
 *    leaves either the old or the new state;
 *  - the file carries a magic, a format version, its size and a checksum,
 *    so a damaged file is reported as L0_E_CORRUPT, never misread.
 * Fault rules and their hit counters live in the same file, so a test can
 * arm a fault that fires in another process (the node agent under test).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "l0_internal.h"

#define SIM_MAGIC "HRL0SIM\0"
#define SIM_FORMAT 1
#define SIM_ENV_PATH "HOSTREFRESH_L0_SIM_STATE"
/* Test hook: sleep this many microseconds between the two halves of the
 * temp-file write, so crash tests can land a SIGKILL mid-write. */
#define SIM_ENV_SLOW_WRITE "HOSTREFRESH_L0_SIM_SLOW_WRITE_US"

struct sim_payload {
    l0_state st;
    uint32_t durable;
    uint32_t n_faults;
    uint64_t rng;
    l0_sim_fault faults[L0_MAX_FAULTS];
};

struct sim_file {
    char magic[8];
    uint32_t format;
    uint32_t size;
    uint64_t checksum;
    struct sim_payload p;
};

_Static_assert(sizeof(struct sim_payload) % 8 == 0, "payload is hashed in words");

struct sim {
    char path[4096];
    char tmp[4096 + 8];
    char lock[4096 + 8];
    char dir[4096];
    int lock_fd;
    unsigned slow_write_us;
    struct sim_file f;
};

static uint64_t checksum(const struct sim_payload *p)
{
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < sizeof *p; i += 8) {
        uint64_t w;
        memcpy(&w, b + i, 8);
        h ^= w;
        h *= 0x100000001b3ULL;
        h ^= h >> 29;
    }
    return h;
}

static int split_paths(struct sim *s, const char *path, char *detail)
{
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof s->path) {
        l0_fmt(detail, "simulated L0 state path is empty or too long");
        return L0_E_INVALID;
    }
    memcpy(s->path, path, n + 1);
    snprintf(s->tmp, sizeof s->tmp, "%s.tmp", path);
    snprintf(s->lock, sizeof s->lock, "%s.lock", path);
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(s->dir, ".");
    else if (slash == path)
        strcpy(s->dir, "/");
    else
        snprintf(s->dir, sizeof s->dir, "%.*s", (int)(slash - path), path);
    return L0_OK;
}

static void sleep_us(unsigned us)
{
    struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static int lock_state(struct sim *s, char *detail)
{
    if (s->lock_fd < 0) {
        s->lock_fd = open(s->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (s->lock_fd < 0) {
            int e = errno;
            l0_fmt(detail, "simulated L0: cannot open lock file %s: %s", s->lock, strerror(e));
            return e == ENOENT ? L0_E_NO_L0 : L0_E_IO;
        }
    }
    while (flock(s->lock_fd, LOCK_EX) != 0)
        if (errno != EINTR) {
            l0_fmt(detail, "simulated L0: flock %s: %s", s->lock, strerror(errno));
            return L0_E_IO;
        }
    return L0_OK;
}

static void unlock_state(struct sim *s)
{
    flock(s->lock_fd, LOCK_UN);
}

static int read_all(int fd, void *buf, size_t len, size_t *got)
{
    size_t off = 0;
    while (off < len) {
        ssize_t r = read(fd, (char *)buf + off, len - off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        off += (size_t)r;
    }
    *got = off;
    return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, (const char *)buf + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        off += (size_t)w;
    }
    return 0;
}

/* Load and check the state file into s->f (caller holds the lock). */
static int load(struct sim *s, char *detail)
{
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        l0_fmt(detail, "no simulated L0 at %s (%s); create it with l0_sim_create", s->path,
               strerror(e));
        return e == ENOENT ? L0_E_NO_L0 : L0_E_IO;
    }
    size_t got = 0;
    char extra;
    int rc = read_all(fd, &s->f, sizeof s->f, &got);
    size_t more = 0;
    if (rc == 0 && got == sizeof s->f)
        rc = read_all(fd, &extra, 1, &more);
    int e = errno;
    close(fd);
    if (rc != 0) {
        l0_fmt(detail, "simulated L0: reading %s: %s", s->path, strerror(e));
        return L0_E_IO;
    }
    if (got != sizeof s->f || more || memcmp(s->f.magic, SIM_MAGIC, 8) != 0 ||
        s->f.format != SIM_FORMAT || s->f.size != sizeof s->f.p) {
        l0_fmt(detail, "simulated L0 state %s: bad size %zu, magic or format version", s->path,
               got + more);
        return L0_E_CORRUPT;
    }
    if (s->f.checksum != checksum(&s->f.p)) {
        l0_fmt(detail, "simulated L0 state %s: checksum mismatch", s->path);
        return L0_E_CORRUPT;
    }
    return L0_OK;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Atomically replace the state file with f (caller holds the lock). */
static int store(const char *path, const char *tmp, const char *dir, struct sim_file *f,
                 unsigned slow_write_us, char *detail)
{
    memcpy(f->magic, SIM_MAGIC, 8);
    f->format = SIM_FORMAT;
    f->size = sizeof f->p;
    f->checksum = checksum(&f->p);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        l0_fmt(detail, "simulated L0: creating %s: %s", tmp, strerror(errno));
        return errno == ENOENT ? L0_E_NO_L0 : L0_E_IO;
    }
    size_t half = sizeof *f / 2;
    int bad = write_all(fd, f, half) != 0;
    if (!bad && slow_write_us)
        sleep_us(slow_write_us);
    bad = bad || write_all(fd, (const char *)f + half, sizeof *f - half) != 0;
    bad = bad || (f->p.durable && fsync(fd) != 0);
    int e = errno;
    if (close(fd) != 0 && !bad) {
        bad = 1;
        e = errno;
    }
    if (bad || rename(tmp, path) != 0) {
        if (!bad)
            e = errno;
        l0_fmt(detail, "simulated L0: writing %s: %s", path, strerror(e));
        unlink(tmp);
        return L0_E_IO;
    }
    if (f->p.durable && fsync_dir(dir) != 0) {
        l0_fmt(detail, "simulated L0: fsync of %s: %s", dir, strerror(errno));
        return L0_E_IO;
    }
    return L0_OK;
}

static uint64_t next_rand(uint64_t *x)
{
    /* xorshift64*: deterministic per state file, so seeded tests repeat. */
    *x ^= *x >> 12;
    *x ^= *x << 25;
    *x ^= *x >> 27;
    return *x * 0x2545F4914F6CDD1DULL;
}

/* Apply the fault rules that match this call.  Returns the injected status
 * (L0_OK: none) and adds their latency to *latency_us. */
static int faults_for(struct sim_payload *p, uint32_t call, unsigned *latency_us, char *detail)
{
    int injected = L0_OK;
    for (uint32_t i = 0; i < p->n_faults; i++) {
        l0_sim_fault *r = &p->faults[i];
        if (r->call ? r->call != call : call == L0_CALL_PROBE)
            continue;
        r->hits++;
        *latency_us += r->latency_us;
        if (r->status == L0_OK || injected != L0_OK)
            continue;
        if (r->nth && r->hits < r->nth)
            continue;
        if (r->times && r->fired >= r->times)
            continue;
        if (r->probability_ppm < 1000000 && next_rand(&p->rng) % 1000000 >= r->probability_ppm)
            continue;
        r->fired++;
        injected = (int)r->status;
        l0_fmt(detail, "simulated L0: injected fault %s on %s (rule %u, call #%u of this kind)",
               l0_status_name(injected), l0_call_name((int)call), i, r->hits);
    }
    return injected;
}

static int verify_image(const l0_image *img, char *detail)
{
    uint8_t sum[L0_SHA256_LEN];
    if (l0_sha256_files(img->kernel, img->initrd, sum) != L0_OK) {
        l0_fmt(detail, "simulated L0: cannot read kernel %s or initrd %s", img->kernel, img->initrd);
        return L0_E_IMAGE;
    }
    if (memcmp(sum, img->sha256, sizeof sum) != 0) {
        l0_fmt(detail, "image checksum mismatch: SHA-256 of %s%s%s differs from the descriptor",
               img->kernel, img->initrd[0] ? " + " : "", img->initrd);
        return L0_E_IMAGE;
    }
    return L0_OK;
}

/* Handshake-free probe answer for a missing L0. */
static void probe_absent(l0_probe_info *out)
{
    memset(out, 0, sizeof *out);
    out->backend = L0_BACKEND_SIM;
    out->features = L0_FEAT_SIMULATED;
}

enum { SIM_OP_CALL, SIM_OP_FAULT_SET, SIM_OP_FAULT_CLEAR, SIM_OP_FAULT_LIST, SIM_OP_PEEK };

struct sim_op {
    int kind;
    struct l0_args *args;
    const l0_sim_fault *fault;
    l0_sim_fault *fault_out;
    uint32_t *n_out;
    l0_state *state_out;
};

static int transact(l0_handle *h, struct sim_op *op)
{
    struct sim *s = h->priv;
    int rc = lock_state(s, h->detail);
    if (rc != L0_OK)
        return rc;
    rc = load(s, h->detail);
    if (rc != L0_OK) {
        unlock_state(s);
        if (rc == L0_E_NO_L0 && op->kind == SIM_OP_CALL && op->args->call == L0_CALL_PROBE) {
            probe_absent(op->args->out_probe);
            return L0_OK;
        }
        return rc;
    }
    struct sim_payload *p = &s->f.p;
    int dirty = 0;
    if (op->kind == SIM_OP_FAULT_SET) {
        if (p->n_faults >= L0_MAX_FAULTS) {
            rc = L0_E_LIMIT;
            l0_set_detail(h, "simulated L0: all %d fault rules in use", L0_MAX_FAULTS);
        } else {
            p->faults[p->n_faults] = *op->fault;
            p->faults[p->n_faults].hits = 0;
            p->faults[p->n_faults].fired = 0;
            p->n_faults++;
            dirty = 1;
        }
    } else if (op->kind == SIM_OP_FAULT_CLEAR) {
        dirty = p->n_faults != 0;
        memset(p->faults, 0, sizeof p->faults);
        p->n_faults = 0;
    } else if (op->kind == SIM_OP_FAULT_LIST) {
        memcpy(op->fault_out, p->faults, sizeof p->faults);
        *op->n_out = p->n_faults;
    } else if (op->kind == SIM_OP_PEEK) {
        *op->state_out = p->st;
    } else {
        struct l0_args *a = op->args;
        unsigned latency = 0;
        int injected = L0_OK;
        if (p->n_faults) {
            injected = faults_for(p, a->call, &latency, h->detail);
            dirty = 1;
        }
        if (latency)
            sleep_us(latency);
        if (injected != L0_OK) {
            rc = injected;
        } else if (a->call == L0_CALL_PROBE) {
            l0_probe_info *out = a->out_probe;
            memset(out, 0, sizeof *out);
            out->abi_version = p->st.abi_version;
            out->features = p->st.features;
            out->l0_present = 1;
            out->backend = L0_BACKEND_SIM;
            memcpy(out->signature, "HRL0-SIMULATED", 15);
        } else if ((rc = l0_check_handshake(p->st.abi_version, p->st.features, a->call,
                                            h->detail)) == L0_OK) {
            if (l0_call_changes_state(a->call)) {
                /* Work on a copy: a refused call must leave no trace. */
                static _Thread_local l0_state work;
                work = p->st;
                a->verify_image = verify_image;
                rc = l0m_apply(&work, a, h->detail);
                if (rc == L0_OK) {
                    work.generation++;
                    p->st = work;
                    dirty = 1;
                }
            } else {
                rc = l0m_apply(&p->st, a, h->detail);
            }
        }
    }
    if (dirty) {
        int wrc = store(s->path, s->tmp, s->dir, &s->f, s->slow_write_us, h->detail);
        if (wrc != L0_OK)
            rc = wrc;
    }
    unlock_state(s);
    return rc;
}

static int sim_call(l0_handle *h, struct l0_args *a)
{
    struct sim_op op = {.kind = SIM_OP_CALL, .args = a};
    return transact(h, &op);
}

static void sim_close(l0_handle *h)
{
    struct sim *s = h->priv;
    if (s && s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
    h->priv = NULL;
}

static const struct l0_backend_ops sim_ops = {"sim", sim_call, sim_close};

int l0_sim_backend_open(l0_handle *h, const char *path)
{
    if (!path || !*path)
        path = getenv(SIM_ENV_PATH);
    if (!path || !*path) {
        l0_set_detail(h, "simulated L0: no state path given and %s is unset", SIM_ENV_PATH);
        return L0_E_INVALID;
    }
    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        return L0_E_IO;
    int rc = split_paths(s, path, h->detail);
    if (rc != L0_OK) {
        free(s);
        return rc;
    }
    s->lock_fd = -1;
    const char *slow = getenv(SIM_ENV_SLOW_WRITE);
    s->slow_write_us = slow ? (unsigned)strtoul(slow, NULL, 10) : 0;
    h->ops = &sim_ops;
    h->priv = s;
    return L0_OK;
}

static int need_sim(l0_handle *h)
{
    if (!h)
        return L0_E_INVALID;
    h->detail[0] = '\0';
    if (h->backend != L0_BACKEND_SIM) {
        l0_set_detail(h, "fault injection exists only in the simulated L0");
        return L0_E_INVALID;
    }
    return L0_OK;
}

int l0_sim_fault_set(l0_handle *h, const l0_sim_fault *fault)
{
    int rc = need_sim(h);
    if (rc != L0_OK)
        return rc;
    if (!fault || fault->call > L0_CALL_LAST || fault->status > L0_STATUS_LAST ||
        fault->probability_ppm > 1000000) {
        l0_set_detail(h, "fault rule: call, status or probability out of range");
        return L0_E_INVALID;
    }
    struct sim_op op = {.kind = SIM_OP_FAULT_SET, .fault = fault};
    return transact(h, &op);
}

int l0_sim_fault_clear(l0_handle *h)
{
    int rc = need_sim(h);
    if (rc != L0_OK)
        return rc;
    struct sim_op op = {.kind = SIM_OP_FAULT_CLEAR};
    return transact(h, &op);
}

int l0_sim_fault_list(l0_handle *h, l0_sim_fault *out, uint32_t *n_out)
{
    int rc = need_sim(h);
    if (rc != L0_OK)
        return rc;
    if (!out || !n_out) {
        l0_set_detail(h, "fault list: NULL output pointer");
        return L0_E_INVALID;
    }
    struct sim_op op = {.kind = SIM_OP_FAULT_LIST, .fault_out = out, .n_out = n_out};
    return transact(h, &op);
}

int l0_sim_peek(l0_handle *h, l0_state *out)
{
    int rc = need_sim(h);
    if (rc != L0_OK)
        return rc;
    if (!out) {
        l0_set_detail(h, "peek: NULL output pointer");
        return L0_E_INVALID;
    }
    struct sim_op op = {.kind = SIM_OP_PEEK, .state_out = out};
    return transact(h, &op);
}

/* (Re)initialise a simulated L0: the simulated machine powers on with one
 * partition holding every CPU and all memory, running L1 1, nested off. */
int l0_sim_create(const char *path, const l0_sim_machine *m)
{
    if (!path || !m || m->n_cpus == 0 || m->n_cpus > L0_MAX_CPUS || m->mem_bytes == 0 ||
        m->mem_bytes % L0_MEM_ALIGN != 0)
        return L0_E_INVALID;
    char detail[L0_DETAIL_MAX];
    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        return L0_E_IO;
    int rc = split_paths(s, path, detail);
    if (rc == L0_OK) {
        s->lock_fd = -1;
        rc = lock_state(s, detail);
    }
    if (rc == L0_OK) {
        memset(&s->f, 0, sizeof s->f);
        l0m_init(&s->f.p.st, m);
        s->f.p.durable = m->durable;
        s->f.p.rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)m->n_cpus ^ m->mem_bytes;
        rc = store(s->path, s->tmp, s->dir, &s->f, 0, detail);
        unlock_state(s);
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s);
    return rc;
}
