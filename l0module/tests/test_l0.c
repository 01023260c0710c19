/*
 * test_l0.c - unit tests of libl0: ABI layout, range arithmetic, SHA-256,
 * the L0 state machine (pure), the simulated L0 (files, faults, crashes of
 * the file format) and the vmcall backend's refusal on a machine without L0.
 * Plain asserts with a counted summary; run under ASan + UBSan by `make test`.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "l0.h"
#include "l0_internal.h"

static int passed, failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, __func__, \
                    #cond);                                                            \
        }                                                                              \
    } while (0)
#define CHECK_EQ(a, b) CHECK((long long)(a) == (long long)(b))

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

static char tmpdir[256];

/* ---------------------------------------------------------------- ABI layout */
static void test_abi_layout(void)
{
    CHECK_EQ(sizeof(l0_range), 16);
    CHECK_EQ(sizeof(l0_cpuset), 32);
    CHECK_EQ(sizeof(l0_probe_info), 32);
    CHECK_EQ(sizeof(l0_partition_spec), 32 + 8 + 16 * 16);
    CHECK_EQ(sizeof(l0_partition), 16 + 32 + 16 * 16);
    CHECK_EQ(offsetof(l0_partition, cpus), 16);
    CHECK_EQ(sizeof(l0_l1), 48);
    CHECK_EQ(sizeof(l0_grant), 24);
    CHECK_EQ(offsetof(l0_grant, range), 8);
    CHECK_EQ(offsetof(l0_state, partitions), 56);
    CHECK_EQ(sizeof(l0_state), 56 + 8 * 304 + 8 * 48 + 32 * 24);
    CHECK_EQ(sizeof(l0_image), 256 + 256 + 1024 + 32);
    CHECK_EQ(offsetof(l0_image, sha256), 1536);
    CHECK_EQ(L0_ABI_VERSION >> 16, L0_ABI_MAJOR);
    /* Names exist for every call and status; unknown ones are labelled. */
    for (int c = L0_CALL_PROBE; c <= L0_CALL_LAST; c++)
        CHECK(strncmp(l0_call_name(c), "L0_CALL_", 8) == 0 && strcmp(l0_call_name(c), "L0_CALL_UNKNOWN"));
    for (int s = 0; s <= L0_STATUS_LAST; s++)
        CHECK(l0_status_name(s)[0] == 'L' && strlen(l0_status_message(s)) > 3);
    CHECK(strcmp(l0_call_name(99), "L0_CALL_UNKNOWN") == 0);
    CHECK(strcmp(l0_status_name(-1), "L0_E_UNKNOWN_STATUS") == 0);
}

/* ------------------------------------------------------------------ helpers */
static void test_sha256(void)
{
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                    0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                    0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const uint8_t empty[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
                                      0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
                                      0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    uint8_t out[32];
    l0_sha256("abc", 3, out);
    CHECK(memcmp(out, abc, 32) == 0);
    l0_sha256("", 0, out);
    CHECK(memcmp(out, empty, 32) == 0);
    /* Files: kernel then initrd, same as hashing the concatenation. */
    char k[300], i[300];
    snprintf(k, sizeof k, "%s/k", tmpdir);
    snprintf(i, sizeof i, "%s/i", tmpdir);
    FILE *f = fopen(k, "w");
    fputs("ab", f);
    fclose(f);
    f = fopen(i, "w");
    fputs("c", f);
    fclose(f);
    CHECK_EQ(l0_sha256_files(k, i, out), L0_OK);
    CHECK(memcmp(out, abc, 32) == 0);
    CHECK_EQ(l0_sha256_files("/nonexistent/kernel", NULL, out), L0_E_IMAGE);
}

static void test_ranges(void)
{
    l0_range r[L0_MAX_RANGES] = {{4 * MiB, 2 * MiB}, {0, 2 * MiB}, {2 * MiB, 2 * MiB}};
    uint32_t n = 3;
    CHECK_EQ(l0_ranges_normalize(r, &n), L0_OK);
    CHECK_EQ(n, 1);
    CHECK_EQ(r[0].size, 6 * MiB);
    l0_range mid = {2 * MiB, 2 * MiB};
    CHECK(l0_ranges_contain(r, n, &mid));
    CHECK_EQ(l0_ranges_subtract(r, &n, &mid), L0_OK);
    CHECK_EQ(n, 2);
    CHECK(!l0_ranges_contain(r, n, &mid));
    CHECK_EQ(l0_ranges_add(r, &n, &mid), L0_OK);
    CHECK_EQ(n, 1);
    l0_range bad[2] = {{0, 4 * MiB}, {2 * MiB, 4 * MiB}};
    n = 2;
    CHECK_EQ(l0_ranges_normalize(bad, &n), L0_E_INVALID);
    l0_range unaligned = {MiB, 2 * MiB}, wrap = {UINT64_MAX - 2 * MiB + 1, 4 * MiB}, zero = {0, 0};
    CHECK(!l0_range_valid(&unaligned));
    CHECK(!l0_range_valid(&wrap));
    CHECK(!l0_range_valid(&zero));
    /* Subtracting into a full list is refused, not overflowed. */
    l0_range full[L0_MAX_RANGES];
    for (int j = 0; j < L0_MAX_RANGES; j++)
        full[j] = (l0_range){(uint64_t)j * 16 * MiB, 8 * MiB};
    n = L0_MAX_RANGES;
    l0_range hole = {2 * MiB, 2 * MiB};
    CHECK_EQ(l0_ranges_subtract(full, &n, &hole), L0_E_LIMIT);
    CHECK_EQ(n, L0_MAX_RANGES);
    l0_cpuset s = {{0}};
    l0_cpuset_set(&s, 0);
    l0_cpuset_set(&s, 255);
    l0_cpuset_set(&s, 300);
    CHECK_EQ(l0_cpuset_count(&s), 2);
    CHECK(l0_cpuset_test(&s, 255) && !l0_cpuset_test(&s, 1));
}

/* ------------------------------------------------------------ state machine */
static char detail[L0_DETAIL_MAX];

static l0_state fresh(void)
{
    l0_sim_machine m = {.n_cpus = 8, .mem_bytes = 8 * GiB};
    l0_state st;
    l0m_init(&st, &m);
    return st;
}

static int create(l0_state *st, uint32_t first_cpu, uint32_t n_cpus, uint64_t base, uint64_t size,
                  uint32_t *id)
{
    l0_partition_spec spec;
    memset(&spec, 0, sizeof spec);
    for (uint32_t c = first_cpu; c < first_cpu + n_cpus; c++)
        l0_cpuset_set(&spec.cpus, c);
    spec.n_ranges = 1;
    spec.ranges[0] = (l0_range){base, size};
    struct l0_args a = {.call = L0_CALL_PARTITION_CREATE, .spec = &spec, .out_id = id};
    return l0m_apply(st, &a, detail);
}

static int call0(l0_state *st, uint32_t call)
{
    struct l0_args a = {.call = call};
    return l0m_apply(st, &a, detail);
}

static int call1(l0_state *st, uint32_t call, uint32_t x)
{
    struct l0_args a = {.call = call, .partition = x, .l1 = x};
    return l0m_apply(st, &a, detail);
}

static int boot(l0_state *st, uint32_t part, uint32_t *l1)
{
    static l0_image img = {.kernel = "/boot/vmlinuz"};
    struct l0_args a = {.call = L0_CALL_L1_BOOT, .partition = part, .image = &img, .out_id = l1};
    return l0m_apply(st, &a, detail);
}

static int grant(l0_state *st, uint32_t src, uint32_t dst, uint64_t base, uint64_t size)
{
    l0_range r = {base, size};
    struct l0_args a = {.call = L0_CALL_MEM_GRANT,
                        .source_l1 = src,
                        .target_l1 = dst,
                        .ranges = &r,
                        .n_ranges = size ? 1 : 0};
    return l0m_apply(st, &a, detail);
}

static int retire(l0_state *st, uint32_t src, uint32_t dst)
{
    struct l0_args a = {.call = L0_CALL_L1_RETIRE, .source_l1 = src, .target_l1 = dst};
    return l0m_apply(st, &a, detail);
}

static void test_refresh_happy_path(void)
{
    l0_state st = fresh();
    uint32_t p = 0, l1 = 0;
    CHECK_EQ(st.n_partitions, 1);
    CHECK_EQ(l0_cpuset_count(&st.partitions[0].cpus), 8);
    CHECK_EQ(create(&st, 4, 4, 4 * GiB, 4 * GiB, &p), L0_OK);
    CHECK_EQ(p, 2);
    CHECK_EQ(st.partitions[0].n_ranges, 1);
    CHECK_EQ(st.partitions[0].ranges[0].size, 4 * GiB);
    CHECK_EQ(st.partitions[1].parent, 1);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_ENABLE), L0_OK);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_ENABLE), L0_E_ALREADY);
    CHECK_EQ(boot(&st, p, &l1), L0_OK);
    CHECK_EQ(l1, 2);
    CHECK_EQ(st.partitions[1].owner_l1, 2);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_DISABLE), L0_E_BUSY);
    CHECK_EQ(retire(&st, 1, 2), L0_E_NO_GRANT);
    CHECK_EQ(grant(&st, 1, 2, 0, 2 * GiB), L0_OK);
    CHECK_EQ(grant(&st, 1, 2, 0, 2 * GiB), L0_E_ALREADY);
    CHECK_EQ(grant(&st, 1, 2, 1 * GiB, 2 * GiB), L0_E_RESOURCE);  /* overlaps */
    CHECK_EQ(grant(&st, 1, 2, 5 * GiB, 2 * MiB), L0_E_RESOURCE);  /* target's own memory */
    CHECK_EQ(grant(&st, 2, 1, 5 * GiB, 2 * MiB), L0_OK);          /* either direction */
    CHECK_EQ(st.n_grants, 2);
    CHECK_EQ(retire(&st, 1, 2), L0_OK);
    CHECK_EQ(st.n_partitions, 1);
    CHECK_EQ(st.partitions[0].id, 2);
    CHECK_EQ(st.partitions[0].parent, 0);
    CHECK_EQ(l0_cpuset_count(&st.partitions[0].cpus), 8);
    CHECK_EQ(st.partitions[0].n_ranges, 1);
    CHECK_EQ(st.partitions[0].ranges[0].size, 8 * GiB);
    CHECK_EQ(st.l1s[0].state, L0_L1_RETIRED);
    CHECK_EQ(st.n_grants, 0);
    CHECK_EQ(retire(&st, 1, 2), L0_E_WRONG_STATE);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_DISABLE), L0_OK);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_DISABLE), L0_E_ALREADY);
    /* A second refresh from the new host works the same way. */
    CHECK_EQ(create(&st, 0, 2, 0, 1 * GiB, &p), L0_OK);
    CHECK_EQ(p, 3);
}

static void test_rollback_path(void)
{
    l0_state st = fresh();
    uint32_t p = 0, l1 = 0;
    CHECK_EQ(create(&st, 6, 2, 6 * GiB, 2 * GiB, &p), L0_OK);
    CHECK_EQ(boot(&st, p, &l1), L0_E_WRONG_STATE); /* nested still off */
    CHECK_EQ(call0(&st, L0_CALL_NESTED_ENABLE), L0_OK);
    CHECK_EQ(boot(&st, p, &l1), L0_OK);
    CHECK_EQ(boot(&st, p, &l1), L0_E_BUSY);
    CHECK_EQ(call1(&st, L0_CALL_PARTITION_DESTROY, p), L0_E_BUSY);
    CHECK_EQ(grant(&st, 1, l1, 0, 0), L0_OK); /* handover marker without memory */
    CHECK_EQ(call1(&st, L0_CALL_L1_STOP, l1), L0_OK);
    CHECK_EQ(st.n_grants, 0);
    CHECK_EQ(call1(&st, L0_CALL_L1_STOP, l1), L0_E_ALREADY);
    CHECK_EQ(call1(&st, L0_CALL_L1_STOP, 1), L0_E_WRONG_STATE); /* the only running L1 */
    CHECK_EQ(call1(&st, L0_CALL_L1_STOP, 77), L0_E_NOT_FOUND);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_DISABLE), L0_E_BUSY); /* partition 2 still exists */
    CHECK_EQ(call1(&st, L0_CALL_PARTITION_DESTROY, p), L0_OK);
    CHECK_EQ(call1(&st, L0_CALL_PARTITION_DESTROY, p), L0_E_NOT_FOUND);
    CHECK_EQ(call1(&st, L0_CALL_PARTITION_DESTROY, 1), L0_E_BUSY);
    CHECK_EQ(st.n_partitions, 1);
    CHECK_EQ(st.partitions[0].ranges[0].size, 8 * GiB);
    CHECK_EQ(l0_cpuset_count(&st.partitions[0].cpus), 8);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_DISABLE), L0_OK);
    CHECK_EQ(st.next_partition_id, 3); /* ids are never reused */
}

static void test_partition_rules(void)
{
    l0_state st = fresh();
    uint32_t p = 0, q = 0;
    CHECK_EQ(create(&st, 0, 8, 0, 2 * GiB, &p), L0_E_RESOURCE);     /* donor left without CPUs */
    CHECK_EQ(create(&st, 4, 4, 0, 8 * GiB, &p), L0_E_RESOURCE);     /* ... or memory */
    CHECK_EQ(create(&st, 7, 2, 0, 2 * GiB, &p), L0_E_INVALID);      /* CPU 8 does not exist */
    CHECK_EQ(create(&st, 4, 2, 8 * GiB, 2 * GiB, &p), L0_E_RESOURCE); /* memory not owned */
    CHECK_EQ(create(&st, 4, 2, 2 * GiB, 2 * GiB, &p), L0_OK);
    CHECK_EQ(create(&st, 5, 2, 6 * GiB, 2 * GiB, &q), L0_E_RESOURCE); /* CPU 5 taken */
    CHECK_EQ(create(&st, 6, 2, 3 * GiB, 2 * GiB, &q), L0_E_RESOURCE); /* memory taken */
    /* Carving from a partition without a running L1 is refused. */
    CHECK_EQ(create(&st, 4, 1, 2 * GiB, 2 * MiB, &q), L0_E_RESOURCE);
    CHECK_EQ(st.partitions[0].n_ranges, 2);
    uint32_t ids[8];
    int made = 0;
    for (uint32_t c = 6; c < 8; c++)
        made += create(&st, c, 1, (uint64_t)c * GiB, 2 * MiB, &ids[c]) == L0_OK;
    CHECK_EQ(made, 2);
    CHECK_EQ(call1(&st, L0_CALL_PARTITION_DESTROY, 1), L0_E_BUSY);
    /* Table limit: 8 partitions. */
    l0_state lim = fresh();
    int ok = 0, limit = 0;
    for (uint32_t i = 0; i < 8; i++) {
        int rc = create(&lim, 1, 1, (uint64_t)(i + 1) * 64 * MiB, 2 * MiB, &q);
        if (rc == L0_OK) {
            ok++;
            continue;
        }
        /* CPU 1 is gone after the first one: use memory-only growth instead. */
        limit += rc == L0_E_RESOURCE;
    }
    CHECK_EQ(ok, 1);
    l0_sim_machine big = {.n_cpus = 16, .mem_bytes = 8 * GiB};
    l0m_init(&lim, &big);
    ok = 0;
    limit = 0;
    for (uint32_t i = 1; i < 10; i++) {
        int rc = create(&lim, i, 1, (uint64_t)i * 64 * MiB, 2 * MiB, &q);
        ok += rc == L0_OK;
        limit += rc == L0_E_LIMIT;
    }
    CHECK_EQ(ok, 7);
    CHECK_EQ(limit, 2);
}

static void test_l1_table_eviction(void)
{
    l0_state st = fresh();
    uint32_t p = 0, l1 = 0;
    CHECK_EQ(create(&st, 7, 1, 7 * GiB, GiB, &p), L0_OK);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_ENABLE), L0_OK);
    for (int i = 0; i < 12; i++) {
        CHECK_EQ(boot(&st, p, &l1), L0_OK);
        CHECK_EQ(call1(&st, L0_CALL_L1_STOP, l1), L0_OK);
    }
    CHECK_EQ(st.n_l1s, L0_MAX_L1S);
    CHECK_EQ(st.l1s[0].id, 1); /* the running host is never evicted */
    CHECK_EQ(st.l1s[L0_MAX_L1S - 1].id, l1);
    CHECK_EQ(l1, 13);
}

static int reject_image(const l0_image *img, char *d)
{
    (void)img;
    l0_fmt(d, "bad image");
    return L0_E_IMAGE;
}

static void test_boot_image_check(void)
{
    l0_state st = fresh();
    uint32_t p = 0, l1 = 0;
    CHECK_EQ(create(&st, 7, 1, 7 * GiB, GiB, &p), L0_OK);
    CHECK_EQ(call0(&st, L0_CALL_NESTED_ENABLE), L0_OK);
    l0_image img = {.kernel = "k"};
    struct l0_args a = {.call = L0_CALL_L1_BOOT,
                        .partition = p,
                        .image = &img,
                        .out_id = &l1,
                        .verify_image = reject_image};
    l0_state before = st;
    CHECK_EQ(l0m_apply(&st, &a, detail), L0_E_IMAGE);
    CHECK(memcmp(&before, &st, sizeof st) == 0);
    CHECK_EQ(boot(&st, 99, &l1), L0_E_NOT_FOUND);
}

/* ------------------------------------------------------------- simulated L0 */
static void sim_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static void test_sim_backend(void)
{
    char path[300];
    sim_path(path, sizeof path, "node.l0");
    l0_handle *h = NULL;
    CHECK_EQ(l0_open(&h, L0_BACKEND_SIM, path), L0_OK);
    l0_probe_info info;
    CHECK_EQ(l0_probe(h, &info), L0_OK);
    CHECK_EQ(info.l0_present, 0);
    l0_state st;
    CHECK_EQ(l0_query(h, &st), L0_E_NO_L0);
    CHECK(strstr(l0_last_detail(h), "no simulated L0") != NULL);
    l0_sim_machine m = {.n_cpus = 4, .mem_bytes = 4 * GiB};
    CHECK_EQ(l0_sim_create(path, &m), L0_OK);
    CHECK_EQ(l0_probe(h, &info), L0_OK);
    CHECK_EQ(info.l0_present, 1);
    CHECK_EQ(info.abi_version, L0_ABI_VERSION);
    CHECK(info.features & L0_FEAT_SIMULATED);
    CHECK_EQ(l0_query(h, &st), L0_OK);
    CHECK_EQ(st.n_cpus, 4);
    CHECK_EQ(st.generation, 0);
    CHECK_EQ(l0_nested_enable(h), L0_OK);
    CHECK_EQ(l0_nested_enable(h), L0_E_ALREADY);
    CHECK(strstr(l0_last_detail(h), "already enabled") != NULL);
    CHECK_EQ(l0_query(h, &st), L0_OK);
    CHECK_EQ(st.generation, 1);
    CHECK_EQ(st.nested, 1);
    /* A second handle (another process, in effect) sees the same L0. */
    l0_handle *h2 = NULL;
    CHECK_EQ(l0_open(&h2, L0_BACKEND_SIM, path), L0_OK);
    CHECK_EQ(l0_nested_disable(h2), L0_OK);
    CHECK_EQ(l0_query(h, &st), L0_OK);
    CHECK_EQ(st.nested, 0);
    CHECK_EQ(st.generation, 2);
    /* Invalid arguments never reach the backend. */
    CHECK_EQ(l0_query(h, NULL), L0_E_INVALID);
    l0_partition_spec spec;
    memset(&spec, 0, sizeof spec);
    uint32_t id;
    CHECK_EQ(l0_partition_create(h, &spec, &id), L0_E_INVALID);
    l0_cpuset_set(&spec.cpus, 3);
    spec.n_ranges = 1;
    spec.ranges[0] = (l0_range){3 * GiB + MiB, GiB};
    CHECK_EQ(l0_partition_create(h, &spec, &id), L0_E_INVALID);
    CHECK(strstr(l0_last_detail(h), "aligned") != NULL);
    spec.ranges[0] = (l0_range){3 * GiB, GiB};
    CHECK_EQ(l0_partition_create(h, &spec, &id), L0_OK);
    CHECK_EQ(l0_mem_grant(h, 1, 1, NULL, 0), L0_E_INVALID);
    CHECK_EQ(l0_l1_retire(h, 1, 1), L0_E_INVALID);
    l0_image img;
    memset(&img, 'x', sizeof img);
    CHECK_EQ(l0_l1_boot(h, id, &img, &id), L0_E_INVALID); /* not NUL-terminated */
    /* Image checksum is verified by the simulated L0. */
    CHECK_EQ(l0_nested_enable(h), L0_OK);
    memset(&img, 0, sizeof img);
    char kernel[300];
    sim_path(kernel, sizeof kernel, "vmlinuz");
    FILE *f = fopen(kernel, "w");
    fputs("kernel bytes", f);
    fclose(f);
    strcpy(img.kernel, kernel);
    uint32_t l1 = 0;
    CHECK_EQ(l0_l1_boot(h, id, &img, &l1), L0_E_IMAGE);
    CHECK(strstr(l0_last_detail(h), "checksum mismatch") != NULL);
    l0_sha256("kernel bytes", 12, img.sha256);
    CHECK_EQ(l0_l1_boot(h, id, &img, &l1), L0_OK);
    CHECK_EQ(l1, 2);
    CHECK_EQ(l0_query(h, &st), L0_OK);
    CHECK(memcmp(st.l1s[1].image_sha256, img.sha256, 32) == 0);
    CHECK_EQ(l0_l1_stop(h, l1), L0_OK);
    CHECK_EQ(l0_partition_destroy(h, id), L0_OK);
    CHECK_EQ(l0_nested_disable(h), L0_OK);
    CHECK_EQ(l0_sim_fault_set(h, NULL), L0_E_INVALID);
    l0_close(h2);
    l0_close(h);
    /* The vmcall handle has no simulator knobs. */
    CHECK_EQ(l0_open(&h, L0_BACKEND_VMCALL, NULL), L0_OK);
    l0_sim_fault fl = {0};
    CHECK_EQ(l0_sim_fault_set(h, &fl), L0_E_INVALID);
    l0_close(h);
    CHECK_EQ(l0_open(&h, 99, NULL), L0_E_INVALID);
    CHECK(h == NULL);
}

static void test_sim_faults(void)
{
    char path[300];
    sim_path(path, sizeof path, "faults.l0");
    l0_sim_machine m = {.n_cpus = 4, .mem_bytes = 4 * GiB};
    CHECK_EQ(l0_sim_create(path, &m), L0_OK);
    l0_handle *h = NULL;
    CHECK_EQ(l0_open(&h, L0_BACKEND_SIM, path), L0_OK);
    /* Fail the 2nd enable with L0_E_HW, once. */
    l0_sim_fault f = {.call = L0_CALL_NESTED_ENABLE, .status = L0_E_HW, .nth = 2, .times = 1,
                      .probability_ppm = 1000000};
    CHECK_EQ(l0_sim_fault_set(h, &f), L0_OK);
    CHECK_EQ(l0_nested_enable(h), L0_OK);
    CHECK_EQ(l0_nested_disable(h), L0_OK);
    CHECK_EQ(l0_nested_enable(h), L0_E_HW);
    CHECK(strstr(l0_last_detail(h), "injected") != NULL);
    l0_state st;
    CHECK_EQ(l0_query(h, &st), L0_OK);
    CHECK_EQ(st.nested, 0); /* a failed call changes nothing */
    CHECK_EQ(l0_nested_enable(h), L0_OK);
    l0_sim_fault list[L0_MAX_FAULTS];
    uint32_t n = 0;
    CHECK_EQ(l0_sim_fault_list(h, list, &n), L0_OK);
    CHECK_EQ(n, 1);
    CHECK_EQ(list[0].hits, 3);
    CHECK_EQ(list[0].fired, 1);
    CHECK_EQ(l0_sim_fault_clear(h), L0_OK);
    /* Probability: about half of 400 queries fail. */
    l0_sim_fault p = {.call = L0_CALL_QUERY, .status = L0_E_IO, .probability_ppm = 500000};
    CHECK_EQ(l0_sim_fault_set(h, &p), L0_OK);
    int fails = 0;
    for (int i = 0; i < 400; i++)
        fails += l0_query(h, &st) == L0_E_IO;
    CHECK(fails > 140 && fails < 260);
    CHECK_EQ(l0_sim_fault_clear(h), L0_OK);
    /* A peek is the simulator's own look: no rule applies to it and no counter moves. */
    l0_sim_fault once = {.call = L0_CALL_QUERY, .status = L0_E_IO, .times = 1, .probability_ppm = 1000000};
    CHECK_EQ(l0_sim_fault_set(h, &once), L0_OK);
    l0_state peeked;
    CHECK_EQ(l0_sim_peek(h, &peeked), L0_OK);
    CHECK_EQ(peeked.nested, 1);
    CHECK_EQ(l0_sim_fault_list(h, list, &n), L0_OK);
    CHECK_EQ(list[0].hits, 0);
    CHECK_EQ(list[0].fired, 0);
    CHECK_EQ(l0_query(h, &st), L0_E_IO); /* the product's query still meets it */
    CHECK_EQ(l0_sim_peek(h, NULL), L0_E_INVALID);
    CHECK_EQ(l0_sim_fault_clear(h), L0_OK);
    /* call 0 matches every call except probe; status OK = latency only. */
    l0_sim_fault any = {.call = 0, .status = L0_E_BUSY, .probability_ppm = 1000000};
    CHECK_EQ(l0_sim_fault_set(h, &any), L0_OK);
    l0_probe_info info;
    CHECK_EQ(l0_probe(h, &info), L0_OK);
    CHECK_EQ(l0_query(h, &st), L0_E_BUSY);
    CHECK_EQ(l0_sim_fault_clear(h), L0_OK);
    l0_sim_fault slow = {.call = L0_CALL_QUERY, .status = L0_OK, .latency_us = 20000,
                         .probability_ppm = 1000000};
    CHECK_EQ(l0_sim_fault_set(h, &slow), L0_OK);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CHECK_EQ(l0_query(h, &st), L0_OK);
    clock_gettime(CLOCK_MONOTONIC, &b);
    CHECK((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) >= 20000000L);
    for (int i = 0; i < L0_MAX_FAULTS - 1; i++)
        CHECK_EQ(l0_sim_fault_set(h, &slow), L0_OK);
    CHECK_EQ(l0_sim_fault_set(h, &slow), L0_E_LIMIT);
    l0_close(h);
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    CHECK(fd >= 0 && write(fd, buf, len) == (ssize_t)len);
    close(fd);
}

static void test_sim_file_integrity(void)
{
    char path[300];
    sim_path(path, sizeof path, "integrity.l0");
    l0_sim_machine m = {.n_cpus = 2, .mem_bytes = GiB};
    CHECK_EQ(l0_sim_create(path, &m), L0_OK);
    FILE *f = fopen(path, "rb");
    char buf[8192];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CHECK(len > 100 && len < sizeof buf);
    l0_handle *h = NULL;
    CHECK_EQ(l0_open(&h, L0_BACKEND_SIM, path), L0_OK);
    l0_state st;
    /* Truncated (a torn write without the rename protocol). */
    write_bytes(path, buf, len / 2);
    CHECK_EQ(l0_query(h, &st), L0_E_CORRUPT);
    l0_probe_info info;
    CHECK_EQ(l0_probe(h, &info), L0_E_CORRUPT);
    /* One flipped bit in the payload. */
    buf[len - 40] ^= 1;
    write_bytes(path, buf, len);
    CHECK_EQ(l0_query(h, &st), L0_E_CORRUPT);
    CHECK(strstr(l0_last_detail(h), "checksum") != NULL);
    buf[len - 40] ^= 1;
    write_bytes(path, buf, len);
    CHECK_EQ(l0_query(h, &st), L0_OK);
    /* Trailing garbage. */
    buf[len] = 'x';
    write_bytes(path, buf, len + 1);
    CHECK_EQ(l0_query(h, &st), L0_E_CORRUPT);
    /* A directory where the file should be: I/O error, not a crash. */
    unlink(path);
    mkdir(path, 0755);
    CHECK_EQ(l0_query(h, &st), L0_E_IO);
    rmdir(path);
    l0_close(h);
    /* ABI mismatch and a missing feature. */
    l0_sim_machine v2 = {.n_cpus = 2, .mem_bytes = GiB, .abi_version = 0x00020000};
    CHECK_EQ(l0_sim_create(path, &v2), L0_OK);
    CHECK_EQ(l0_open(&h, L0_BACKEND_SIM, path), L0_OK);
    CHECK_EQ(l0_probe(h, &info), L0_OK);
    CHECK_EQ(info.abi_version, 0x00020000);
    CHECK_EQ(l0_query(h, &st), L0_E_ABI);
    l0_sim_machine nostop = {.n_cpus = 2, .mem_bytes = GiB,
                             .features = L0_FEAT_SIMULATED | (L0_FEAT_ALL_CALLS & ~L0_FEAT_L1_STOP)};
    CHECK_EQ(l0_sim_create(path, &nostop), L0_OK);
    CHECK_EQ(l0_query(h, &st), L0_OK);
    CHECK_EQ(l0_l1_stop(h, 1), L0_E_UNKNOWN_CALL);
    l0_close(h);
    l0_sim_machine bad = {.n_cpus = 0, .mem_bytes = GiB};
    CHECK_EQ(l0_sim_create(path, &bad), L0_E_INVALID);
    CHECK_EQ(l0_sim_create("/nonexistent-dir/x.l0", &m), L0_E_NO_L0);
}

/* ---------------------------------------------------------------- vmcall */
static void test_vmcall_without_l0(void)
{
    l0_handle *h = NULL;
    int rc = l0_open(&h, L0_BACKEND_VMCALL, NULL);
#if defined(__x86_64__)
    CHECK_EQ(rc, L0_OK);
    l0_probe_info info;
    CHECK_EQ(l0_probe(h, &info), L0_OK);
    if (info.l0_present) {
        fprintf(stderr, "note: a real hostrefresh L0 is present; skipping the no-L0 checks\n");
        l0_close(h);
        return;
    }
    CHECK_EQ(info.backend, L0_BACKEND_VMCALL);
    l0_state st;
    CHECK_EQ(l0_query(h, &st), L0_E_NO_L0);
    CHECK(strstr(l0_last_detail(h), "no L0 present") != NULL);
    CHECK_EQ(l0_nested_enable(h), L0_E_NO_L0);
    CHECK_EQ(l0_nested_disable(h), L0_E_NO_L0);
    CHECK_EQ(l0_partition_destroy(h, 2), L0_E_NO_L0);
    CHECK_EQ(l0_l1_retire(h, 1, 2), L0_E_NO_L0);
    CHECK_EQ(l0_l1_stop(h, 2), L0_E_NO_L0);
    CHECK_EQ(l0_mem_grant(h, 1, 2, NULL, 0), L0_E_NO_L0);
    l0_close(h);
#else
    CHECK_EQ(rc, L0_E_UNAVAILABLE);
#endif
}

int main(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/l0test.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 2;
    }
    test_abi_layout();
    test_sha256();
    test_ranges();
    test_refresh_happy_path();
    test_rollback_path();
    test_partition_rules();
    test_l1_table_eviction();
    test_boot_image_check();
    test_sim_backend();
    test_sim_faults();
    test_sim_file_integrity();
    test_vmcall_without_l0();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("l0 C tests: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
