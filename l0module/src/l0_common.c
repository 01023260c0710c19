/*
 * l0_common.c - the backend-independent half of libl0: handles, argument
 * validation (so no backend ever sees a malformed request), the ABI
 * handshake, status/call names, range and CPU-set arithmetic, SHA-256.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l0_internal.h"

/* The struct sizes in the cffi-visible region are literal numbers; keep them
 * tied to the named limits. */
_Static_assert(sizeof(l0_cpuset) * 8 == L0_MAX_CPUS, "cpuset size");
_Static_assert(sizeof(((l0_cpuset *)0)->bits) / 8 == L0_CPUSET_WORDS, "cpuset words");
_Static_assert(sizeof(((l0_partition *)0)->ranges) / sizeof(l0_range) == L0_MAX_RANGES, "ranges");
_Static_assert(sizeof(((l0_partition_spec *)0)->ranges) / sizeof(l0_range) == L0_MAX_RANGES, "spec");
_Static_assert(sizeof(((l0_state *)0)->partitions) / sizeof(l0_partition) == L0_MAX_PARTITIONS, "parts");
_Static_assert(sizeof(((l0_state *)0)->l1s) / sizeof(l0_l1) == L0_MAX_L1S, "l1s");
_Static_assert(sizeof(((l0_state *)0)->grants) / sizeof(l0_grant) == L0_MAX_GRANTS, "grants");
_Static_assert(sizeof(((l0_image *)0)->kernel) == L0_PATH_MAX, "kernel");
_Static_assert(sizeof(((l0_image *)0)->initrd) == L0_PATH_MAX, "initrd");
_Static_assert(sizeof(((l0_image *)0)->cmdline) == L0_CMDLINE_MAX, "cmdline");
_Static_assert(sizeof(((l0_image *)0)->sha256) == L0_SHA256_LEN, "sha");
_Static_assert(L0_ABI_VERSION == ((L0_ABI_MAJOR << 16) | L0_ABI_MINOR), "abi version");
_Static_assert(L0_FEAT_ALL_CALLS == (L0_FEAT_PARTITION | L0_FEAT_NESTED | L0_FEAT_L1_BOOT |
                                     L0_FEAT_MEM_GRANT | L0_FEAT_L1_RETIRE | L0_FEAT_L1_STOP),
               "features");

static const char *const status_names[] = {
    [L0_OK] = "L0_OK",
    [L0_E_NO_L0] = "L0_E_NO_L0",
    [L0_E_UNAVAILABLE] = "L0_E_UNAVAILABLE",
    [L0_E_ABI] = "L0_E_ABI",
    [L0_E_INVALID] = "L0_E_INVALID",
    [L0_E_UNKNOWN_CALL] = "L0_E_UNKNOWN_CALL",
    [L0_E_NOT_FOUND] = "L0_E_NOT_FOUND",
    [L0_E_ALREADY] = "L0_E_ALREADY",
    [L0_E_WRONG_STATE] = "L0_E_WRONG_STATE",
    [L0_E_BUSY] = "L0_E_BUSY",
    [L0_E_RESOURCE] = "L0_E_RESOURCE",
    [L0_E_LIMIT] = "L0_E_LIMIT",
    [L0_E_NO_GRANT] = "L0_E_NO_GRANT",
    [L0_E_IMAGE] = "L0_E_IMAGE",
    [L0_E_HW] = "L0_E_HW",
    [L0_E_IO] = "L0_E_IO",
    [L0_E_CORRUPT] = "L0_E_CORRUPT",
};

static const char *const status_messages[] = {
    [L0_OK] = "success",
    [L0_E_NO_L0] = "no L0 hypervisor present",
    [L0_E_UNAVAILABLE] = "backend not available on this platform",
    [L0_E_ABI] = "L0 speaks an incompatible ABI major version",
    [L0_E_INVALID] = "malformed arguments",
    [L0_E_UNKNOWN_CALL] = "the L0 does not implement this call",
    [L0_E_NOT_FOUND] = "no such partition or L1",
    [L0_E_ALREADY] = "already in the requested state",
    [L0_E_WRONG_STATE] = "call not legal in the current L0 state",
    [L0_E_BUSY] = "resource still in use",
    [L0_E_RESOURCE] = "CPUs or memory not available to this request",
    [L0_E_LIMIT] = "an L0 table is full",
    [L0_E_NO_GRANT] = "no memory grant (handover) from source to target L1",
    [L0_E_IMAGE] = "L1 image does not match its checksum or cannot be read",
    [L0_E_HW] = "the L0 failed internally (virtualization state swap)",
    [L0_E_IO] = "simulated L0 state file I/O error",
    [L0_E_CORRUPT] = "simulated L0 state file is corrupt",
};

static const char *const call_names[] = {
    [L0_CALL_PROBE] = "L0_CALL_PROBE",
    [L0_CALL_QUERY] = "L0_CALL_QUERY",
    [L0_CALL_PARTITION_CREATE] = "L0_CALL_PARTITION_CREATE",
    [L0_CALL_PARTITION_DESTROY] = "L0_CALL_PARTITION_DESTROY",
    [L0_CALL_NESTED_ENABLE] = "L0_CALL_NESTED_ENABLE",
    [L0_CALL_NESTED_DISABLE] = "L0_CALL_NESTED_DISABLE",
    [L0_CALL_L1_BOOT] = "L0_CALL_L1_BOOT",
    [L0_CALL_MEM_GRANT] = "L0_CALL_MEM_GRANT",
    [L0_CALL_L1_RETIRE] = "L0_CALL_L1_RETIRE",
    [L0_CALL_L1_STOP] = "L0_CALL_L1_STOP",
};

const char *l0_status_name(int status)
{
    if (status < 0 || status > L0_STATUS_LAST)
        return "L0_E_UNKNOWN_STATUS";
    return status_names[status];
}

const char *l0_status_message(int status)
{
    if (status < 0 || status > L0_STATUS_LAST)
        return "unknown status";
    return status_messages[status];
}

const char *l0_call_name(int call)
{
    if (call < L0_CALL_PROBE || call > L0_CALL_LAST)
        return "L0_CALL_UNKNOWN";
    return call_names[call];
}

void l0_fmt(char *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, L0_DETAIL_MAX, fmt, ap);
    va_end(ap);
}

void l0_set_detail(l0_handle *h, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(h->detail, sizeof h->detail, fmt, ap);
    va_end(ap);
}

const char *l0_last_detail(const l0_handle *h)
{
    return h ? h->detail : "no handle";
}

uint32_t l0_call_feature(uint32_t call)
{
    switch (call) {
    case L0_CALL_PARTITION_CREATE:
    case L0_CALL_PARTITION_DESTROY:
        return L0_FEAT_PARTITION;
    case L0_CALL_NESTED_ENABLE:
    case L0_CALL_NESTED_DISABLE:
        return L0_FEAT_NESTED;
    case L0_CALL_L1_BOOT:
        return L0_FEAT_L1_BOOT;
    case L0_CALL_MEM_GRANT:
        return L0_FEAT_MEM_GRANT;
    case L0_CALL_L1_RETIRE:
        return L0_FEAT_L1_RETIRE;
    case L0_CALL_L1_STOP:
        return L0_FEAT_L1_STOP;
    default:
        return 0;
    }
}

int l0_call_changes_state(uint32_t call)
{
    return call >= L0_CALL_PARTITION_CREATE && call <= L0_CALL_LAST;
}

int l0_check_handshake(uint32_t abi_version, uint32_t features, uint32_t call, char *detail)
{
    if ((abi_version >> 16) != L0_ABI_MAJOR) {
        l0_fmt(detail, "L0 speaks ABI %u.%u, this library speaks %u.%u", abi_version >> 16,
               abi_version & 0xffff, (unsigned)L0_ABI_MAJOR, (unsigned)L0_ABI_MINOR);
        return L0_E_ABI;
    }
    uint32_t need = l0_call_feature(call);
    if (need && !(features & need)) {
        l0_fmt(detail, "%s: the L0 does not advertise feature bit 0x%x (features 0x%x)",
               l0_call_name((int)call), need, features);
        return L0_E_UNKNOWN_CALL;
    }
    return L0_OK;
}

/* ---- ranges and CPU sets ---------------------------------------------- */

int l0_range_valid(const l0_range *r)
{
    return r->size > 0 && r->base % L0_MEM_ALIGN == 0 && r->size % L0_MEM_ALIGN == 0 &&
           r->base + r->size > r->base;
}

int l0_ranges_overlap(const l0_range *a, const l0_range *b)
{
    return a->base < b->base + b->size && b->base < a->base + a->size;
}

static int cmp_range(const void *x, const void *y)
{
    const l0_range *a = x, *b = y;
    return (a->base > b->base) - (a->base < b->base);
}

/* Sort and merge touching ranges; fails with L0_E_INVALID on overlap. */
int l0_ranges_normalize(l0_range *r, uint32_t *n)
{
    if (*n == 0)
        return L0_OK;
    qsort(r, *n, sizeof *r, cmp_range);
    uint32_t out = 0;
    for (uint32_t i = 1; i < *n; i++) {
        if (r[i].base < r[out].base + r[out].size)
            return L0_E_INVALID;
        if (r[i].base == r[out].base + r[out].size)
            r[out].size += r[i].size;
        else
            r[++out] = r[i];
    }
    *n = out + 1;
    return L0_OK;
}

/* Whether r lies wholly inside the (normalized) list. */
int l0_ranges_contain(const l0_range *list, uint32_t n, const l0_range *r)
{
    for (uint32_t i = 0; i < n; i++)
        if (r->base >= list[i].base && r->base + r->size <= list[i].base + list[i].size)
            return 1;
    return 0;
}

/* Remove r (contained in one entry) from the normalized list. */
int l0_ranges_subtract(l0_range *list, uint32_t *n, const l0_range *r)
{
    for (uint32_t i = 0; i < *n; i++) {
        l0_range e = list[i];
        if (!(r->base >= e.base && r->base + r->size <= e.base + e.size))
            continue;
        l0_range lo = {e.base, r->base - e.base};
        l0_range hi = {r->base + r->size, e.base + e.size - (r->base + r->size)};
        if (lo.size && hi.size) {
            if (*n >= L0_MAX_RANGES)
                return L0_E_LIMIT;
            memmove(&list[i + 2], &list[i + 1], (*n - i - 1) * sizeof *list);
            list[i] = lo;
            list[i + 1] = hi;
            (*n)++;
        } else if (lo.size) {
            list[i] = lo;
        } else if (hi.size) {
            list[i] = hi;
        } else {
            memmove(&list[i], &list[i + 1], (*n - i - 1) * sizeof *list);
            (*n)--;
        }
        return L0_OK;
    }
    return L0_E_RESOURCE;
}

/* Add r (disjoint from the list) and re-normalize. */
int l0_ranges_add(l0_range *list, uint32_t *n, const l0_range *r)
{
    l0_range tmp[L0_MAX_RANGES + 1];
    memcpy(tmp, list, *n * sizeof *list);
    tmp[*n] = *r;
    uint32_t m = *n + 1;
    int rc = l0_ranges_normalize(tmp, &m);
    if (rc != L0_OK)
        return rc;
    if (m > L0_MAX_RANGES)
        return L0_E_LIMIT;
    memcpy(list, tmp, m * sizeof *list);
    *n = m;
    return L0_OK;
}

int l0_cpuset_test(const l0_cpuset *s, uint32_t cpu)
{
    return cpu < L0_MAX_CPUS && (s->bits[cpu / 64] >> (cpu % 64)) & 1;
}

void l0_cpuset_set(l0_cpuset *s, uint32_t cpu)
{
    if (cpu < L0_MAX_CPUS)
        s->bits[cpu / 64] |= UINT64_C(1) << (cpu % 64);
}

uint32_t l0_cpuset_count(const l0_cpuset *s)
{
    uint32_t c = 0;
    for (int i = 0; i < L0_CPUSET_WORDS; i++)
        c += (uint32_t)__builtin_popcountll(s->bits[i]);
    return c;
}

/* ---- argument validation (backend independent) ------------------------- */

static int str_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

static int validate_ranges(l0_handle *h, const l0_range *r, uint32_t n, uint32_t max, int allow_empty)
{
    if (n > max || (n == 0 && !allow_empty)) {
        l0_set_detail(h, "%u memory ranges given, allowed %u..%u", n, allow_empty ? 0 : 1, max);
        return L0_E_INVALID;
    }
    if (n && !r) {
        l0_set_detail(h, "ranges pointer is NULL");
        return L0_E_INVALID;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (!l0_range_valid(&r[i])) {
            l0_set_detail(h, "range %u [0x%llx +0x%llx] is empty, wraps or is not %u-byte aligned", i,
                          (unsigned long long)r[i].base, (unsigned long long)r[i].size,
                          (unsigned)L0_MEM_ALIGN);
            return L0_E_INVALID;
        }
        for (uint32_t j = 0; j < i; j++)
            if (l0_ranges_overlap(&r[i], &r[j])) {
                l0_set_detail(h, "ranges %u and %u overlap", j, i);
                return L0_E_INVALID;
            }
    }
    return L0_OK;
}

static int validate(l0_handle *h, const struct l0_args *a)
{
    switch (a->call) {
    case L0_CALL_PROBE:
        if (!a->out_probe)
            goto null;
        return L0_OK;
    case L0_CALL_QUERY:
        if (!a->out_state)
            goto null;
        return L0_OK;
    case L0_CALL_PARTITION_CREATE:
        if (!a->spec || !a->out_id)
            goto null;
        if (l0_cpuset_count(&a->spec->cpus) == 0) {
            l0_set_detail(h, "partition CPU set is empty");
            return L0_E_INVALID;
        }
        return validate_ranges(h, a->spec->ranges, a->spec->n_ranges, L0_MAX_RANGES, 0);
    case L0_CALL_L1_BOOT:
        if (!a->image || !a->out_id)
            goto null;
        if (!str_terminated(a->image->kernel, sizeof a->image->kernel) ||
            !str_terminated(a->image->initrd, sizeof a->image->initrd) ||
            !str_terminated(a->image->cmdline, sizeof a->image->cmdline)) {
            l0_set_detail(h, "image descriptor string not NUL-terminated");
            return L0_E_INVALID;
        }
        if (a->image->kernel[0] == '\0') {
            l0_set_detail(h, "image descriptor has no kernel");
            return L0_E_INVALID;
        }
        return L0_OK;
    case L0_CALL_MEM_GRANT:
        if (a->source_l1 == a->target_l1) {
            l0_set_detail(h, "grant source and target are both L1 %u", a->source_l1);
            return L0_E_INVALID;
        }
        return validate_ranges(h, a->ranges, a->n_ranges, L0_MAX_GRANT_RANGES, 1);
    case L0_CALL_L1_RETIRE:
        if (a->source_l1 == a->target_l1) {
            l0_set_detail(h, "retire source and target are both L1 %u", a->source_l1);
            return L0_E_INVALID;
        }
        return L0_OK;
    default:
        return L0_OK;
    }
null:
    l0_set_detail(h, "%s: NULL output or input pointer", l0_call_name((int)a->call));
    return L0_E_INVALID;
}

static int dispatch(l0_handle *h, struct l0_args *a)
{
    if (!h)
        return L0_E_INVALID;
    h->detail[0] = '\0';
    int rc = validate(h, a);
    if (rc != L0_OK)
        return rc;
    rc = h->ops->call(h, a);
    if (rc != L0_OK && h->detail[0] == '\0')
        l0_set_detail(h, "%s", l0_status_message(rc));
    return rc;
}

/* ---- public entry points ------------------------------------------------ */

int l0_open(l0_handle **out, uint32_t backend, const char *sim_state_path)
{
    if (!out)
        return L0_E_INVALID;
    *out = NULL;
    l0_handle *h = calloc(1, sizeof *h);
    if (!h)
        return L0_E_IO;
    h->backend = backend;
    int rc;
    switch (backend) {
    case L0_BACKEND_SIM:
        rc = l0_sim_backend_open(h, sim_state_path);
        break;
    case L0_BACKEND_VMCALL:
        rc = l0_vmcall_backend_open(h);
        break;
    default:
        rc = L0_E_INVALID;
    }
    if (rc != L0_OK) {
        free(h);
        return rc;
    }
    *out = h;
    return L0_OK;
}

void l0_close(l0_handle *h)
{
    if (!h)
        return;
    if (h->ops && h->ops->close)
        h->ops->close(h);
    free(h);
}

int l0_probe(l0_handle *h, l0_probe_info *out)
{
    struct l0_args a = {.call = L0_CALL_PROBE, .out_probe = out};
    return dispatch(h, &a);
}

int l0_query(l0_handle *h, l0_state *out)
{
    struct l0_args a = {.call = L0_CALL_QUERY, .out_state = out};
    return dispatch(h, &a);
}

int l0_partition_create(l0_handle *h, const l0_partition_spec *spec, uint32_t *out_id)
{
    struct l0_args a = {.call = L0_CALL_PARTITION_CREATE, .spec = spec, .out_id = out_id};
    return dispatch(h, &a);
}

int l0_partition_destroy(l0_handle *h, uint32_t partition)
{
    struct l0_args a = {.call = L0_CALL_PARTITION_DESTROY, .partition = partition};
    return dispatch(h, &a);
}

int l0_nested_enable(l0_handle *h)
{
    struct l0_args a = {.call = L0_CALL_NESTED_ENABLE};
    return dispatch(h, &a);
}

int l0_nested_disable(l0_handle *h)
{
    struct l0_args a = {.call = L0_CALL_NESTED_DISABLE};
    return dispatch(h, &a);
}

int l0_l1_boot(l0_handle *h, uint32_t partition, const l0_image *image, uint32_t *out_l1)
{
    struct l0_args a = {
        .call = L0_CALL_L1_BOOT, .partition = partition, .image = image, .out_id = out_l1};
    return dispatch(h, &a);
}

int l0_mem_grant(l0_handle *h, uint32_t source_l1, uint32_t target_l1, const l0_range *ranges,
                 uint32_t n_ranges)
{
    struct l0_args a = {.call = L0_CALL_MEM_GRANT,
                        .source_l1 = source_l1,
                        .target_l1 = target_l1,
                        .ranges = ranges,
                        .n_ranges = n_ranges};
    return dispatch(h, &a);
}

int l0_l1_retire(l0_handle *h, uint32_t source_l1, uint32_t target_l1)
{
    struct l0_args a = {.call = L0_CALL_L1_RETIRE, .source_l1 = source_l1, .target_l1 = target_l1};
    return dispatch(h, &a);
}

int l0_l1_stop(l0_handle *h, uint32_t l1)
{
    struct l0_args a = {.call = L0_CALL_L1_STOP, .l1 = l1};
    return dispatch(h, &a);
}

/* ---- SHA-256 (FIPS 180-4), small and dependency free -------------------- */

static const uint32_t K256[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

struct sha256_ctx {
    uint32_t h[8];
    uint64_t len;
    uint8_t buf[64];
    size_t fill;
};

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256_ctx *c, const uint8_t *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 |
               p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = c->h[0], b = c->h[1], cc = c->h[2], d = c->h[3], e = c->h[4], f = c->h[5],
             g = c->h[6], hh = c->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = hh + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K256[i] + w[i];
        uint32_t t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & cc) ^ (b & cc));
        hh = g;
        g = f;
        f = e;
        e = d + t1;
        d = cc;
        cc = b;
        b = a;
        a = t1 + t2;
    }
    c->h[0] += a;
    c->h[1] += b;
    c->h[2] += cc;
    c->h[3] += d;
    c->h[4] += e;
    c->h[5] += f;
    c->h[6] += g;
    c->h[7] += hh;
}

static void sha256_init(struct sha256_ctx *c)
{
    static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(c->h, iv, sizeof iv);
    c->len = 0;
    c->fill = 0;
}

static void sha256_update(struct sha256_ctx *c, const void *data, size_t len)
{
    const uint8_t *p = data;
    c->len += len;
    while (len) {
        size_t take = 64 - c->fill < len ? 64 - c->fill : len;
        memcpy(c->buf + c->fill, p, take);
        c->fill += take;
        p += take;
        len -= take;
        if (c->fill == 64) {
            sha256_block(c, c->buf);
            c->fill = 0;
        }
    }
}

static void sha256_final(struct sha256_ctx *c, uint8_t out[32])
{
    uint64_t bits = c->len * 8;
    uint8_t pad = 0x80, zero = 0, lenb[8];
    sha256_update(c, &pad, 1);
    while (c->fill != 56)
        sha256_update(c, &zero, 1);
    for (int i = 0; i < 8; i++)
        lenb[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha256_update(c, lenb, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (uint8_t)(c->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(c->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(c->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)c->h[i];
    }
}

void l0_sha256(const void *data, size_t len, uint8_t out[32])
{
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, data, len);
    sha256_final(&c, out);
}

static int hash_file(struct sha256_ctx *c, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    uint8_t buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        sha256_update(c, buf, n);
    int err = ferror(f);
    fclose(f);
    return err ? -1 : 0;
}

/* The image checksum: SHA-256 over the kernel bytes then the initrd bytes. */
int l0_sha256_files(const char *kernel, const char *initrd, uint8_t out[32])
{
    struct sha256_ctx c;
    sha256_init(&c);
    if (!kernel || hash_file(&c, kernel) != 0)
        return L0_E_IMAGE;
    if (initrd && initrd[0] && hash_file(&c, initrd) != 0)
        return L0_E_IMAGE;
    sha256_final(&c, out);
    return L0_OK;
}
