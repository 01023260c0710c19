/*
 * l0.h - the ABI between a host (L1) and the hostrefresh L0 hypervisor.
 *
 * This header is the single source of truth: call numbers, status codes,
 * structures and the C entry points of libl0.  The Python binding reads
 * the region between L0_CDEF_BEGIN and L0_CDEF_END verbatim (with every
 * "#define NAME value" turned into "#define NAME ..."), so that region
 * must stay plain C that cffi can parse: no expressions in macros that
 * the binding needs, no inline functions.
 *
 * Call numbers and status codes are never reused: retired numbers stay
 * reserved with a comment.  See docs/hypercalls.rst for one block per call.
 */
#ifndef HOSTREFRESH_L0_H
#define HOSTREFRESH_L0_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* L0_CDEF_BEGIN */

/* ABI version: major << 16 | minor.  A major mismatch refuses every call. */
#define L0_ABI_MAJOR 1
#define L0_ABI_MINOR 0
#define L0_ABI_VERSION 0x00010000

/* CPUID hypervisor leaf range scanned for the L0 signature (step 0x100). */
#define L0_CPUID_LEAF_FIRST 0x40000000
#define L0_CPUID_LEAF_LAST 0x40000F00
#define L0_CPUID_LEAF_STEP 0x100

/* Limits of the structures below (fixed so that every struct has one size). */
#define L0_MAX_CPUS 256
#define L0_CPUSET_WORDS 4
#define L0_MAX_RANGES 16
#define L0_MAX_PARTITIONS 8
#define L0_MAX_L1S 8
#define L0_MAX_GRANTS 32
#define L0_MAX_GRANT_RANGES 16
#define L0_MAX_FAULTS 16
#define L0_PATH_MAX 256
#define L0_CMDLINE_MAX 1024
#define L0_SHA256_LEN 32
#define L0_DETAIL_MAX 256

/* Memory ranges must be aligned to (and a multiple of) this many bytes. */
#define L0_MEM_ALIGN 2097152

/* Feature bits reported by probe. */
#define L0_FEAT_PARTITION 1
#define L0_FEAT_NESTED 2
#define L0_FEAT_L1_BOOT 4
#define L0_FEAT_MEM_GRANT 8
#define L0_FEAT_L1_RETIRE 16
#define L0_FEAT_L1_STOP 32
#define L0_FEAT_SIMULATED 0x80000000
#define L0_FEAT_ALL_CALLS 63

/* Hypercall numbers (rax on entry).  Never reuse a number. */
enum l0_call {
    L0_CALL_PROBE = 1,
    L0_CALL_QUERY = 2,
    L0_CALL_PARTITION_CREATE = 3,
    L0_CALL_PARTITION_DESTROY = 4,
    L0_CALL_NESTED_ENABLE = 5,
    L0_CALL_NESTED_DISABLE = 6,
    L0_CALL_L1_BOOT = 7,
    L0_CALL_MEM_GRANT = 8,
    L0_CALL_L1_RETIRE = 9,
    L0_CALL_L1_STOP = 10,
    L0_CALL_LAST = 10
};

/* Status codes (rax on return).  Never reuse a number. */
enum l0_status {
    L0_OK = 0,
    L0_E_NO_L0 = 1,
    L0_E_UNAVAILABLE = 2,
    L0_E_ABI = 3,
    L0_E_INVALID = 4,
    L0_E_UNKNOWN_CALL = 5,
    L0_E_NOT_FOUND = 6,
    L0_E_ALREADY = 7,
    L0_E_WRONG_STATE = 8,
    L0_E_BUSY = 9,
    L0_E_RESOURCE = 10,
    L0_E_LIMIT = 11,
    L0_E_NO_GRANT = 12,
    L0_E_IMAGE = 13,
    L0_E_HW = 14,
    L0_E_IO = 15,
    L0_E_CORRUPT = 16,
    L0_STATUS_LAST = 16
};

/* Backends of l0_open(). */
enum l0_backend {
    L0_BACKEND_SIM = 1,
    L0_BACKEND_VMCALL = 2
};

/* Lifecycle of an L1 as the L0 sees it. */
enum l0_l1_state {
    L0_L1_RUNNING = 1,
    L0_L1_RETIRED = 2,
    L0_L1_STOPPED = 3
};

typedef struct l0_range {
    uint64_t base;
    uint64_t size;
} l0_range;

typedef struct l0_cpuset {
    uint64_t bits[4];
} l0_cpuset;

typedef struct l0_probe_info {
    uint32_t abi_version;
    uint32_t features;
    uint32_t l0_present;
    uint32_t backend;
    char signature[16];
} l0_probe_info;

typedef struct l0_partition_spec {
    l0_cpuset cpus;
    uint32_t n_ranges;
    uint32_t reserved;
    l0_range ranges[16];
} l0_partition_spec;

typedef struct l0_partition {
    uint32_t id;
    uint32_t parent;
    uint32_t owner_l1;
    uint32_t n_ranges;
    l0_cpuset cpus;
    l0_range ranges[16];
} l0_partition;

typedef struct l0_l1 {
    uint32_t id;
    uint32_t state;
    uint32_t partition;
    uint32_t reserved;
    uint8_t image_sha256[32];
} l0_l1;

typedef struct l0_grant {
    uint32_t source_l1;
    uint32_t target_l1;
    l0_range range;
} l0_grant;

typedef struct l0_state {
    uint32_t abi_version;
    uint32_t features;
    uint32_t nested;
    uint32_t n_cpus;
    uint64_t mem_bytes;
    uint64_t generation;
    uint32_t next_partition_id;
    uint32_t next_l1_id;
    uint32_t n_partitions;
    uint32_t n_l1s;
    uint32_t n_grants;
    uint32_t reserved;
    l0_partition partitions[8];
    l0_l1 l1s[8];
    l0_grant grants[32];
} l0_state;

typedef struct l0_image {
    char kernel[256];
    char initrd[256];
    char cmdline[1024];
    uint8_t sha256[32];
} l0_image;

/* Simulator only: the simulated machine and its fault-injection rules. */
typedef struct l0_sim_machine {
    uint32_t n_cpus;
    uint32_t abi_version;
    uint32_t features;
    uint32_t durable;
    uint64_t mem_bytes;
} l0_sim_machine;

typedef struct l0_sim_fault {
    uint32_t call;
    uint32_t status;
    uint32_t nth;
    uint32_t times;
    uint32_t probability_ppm;
    uint32_t latency_us;
    uint32_t hits;
    uint32_t fired;
} l0_sim_fault;

typedef struct l0_handle l0_handle;

/* Open a handle.  sim_state_path: the simulated L0's state file (NULL: env
 * HOSTREFRESH_L0_SIM_STATE); ignored by the vmcall backend. */
int l0_open(l0_handle **out, uint32_t backend, const char *sim_state_path);
void l0_close(l0_handle *h);

/* The hypercalls, one function each.  All return an enum l0_status. */
int l0_probe(l0_handle *h, l0_probe_info *out);
int l0_query(l0_handle *h, l0_state *out);
int l0_partition_create(l0_handle *h, const l0_partition_spec *spec, uint32_t *out_id);
int l0_partition_destroy(l0_handle *h, uint32_t partition);
int l0_nested_enable(l0_handle *h);
int l0_nested_disable(l0_handle *h);
int l0_l1_boot(l0_handle *h, uint32_t partition, const l0_image *image, uint32_t *out_l1);
int l0_mem_grant(l0_handle *h, uint32_t source_l1, uint32_t target_l1,
                 const l0_range *ranges, uint32_t n_ranges);
int l0_l1_retire(l0_handle *h, uint32_t source_l1, uint32_t target_l1);
int l0_l1_stop(l0_handle *h, uint32_t l1);

/* Why the last call on this handle failed, in words (never NULL). */
const char *l0_last_detail(const l0_handle *h);
const char *l0_status_name(int status);
const char *l0_status_message(int status);
const char *l0_call_name(int call);

/* Simulator only (the simulated L0 is not a hypervisor; these are its knobs). */
int l0_sim_create(const char *path, const l0_sim_machine *machine);
int l0_sim_fault_set(l0_handle *h, const l0_sim_fault *fault);
int l0_sim_fault_clear(l0_handle *h);
int l0_sim_fault_list(l0_handle *h, l0_sim_fault *out, uint32_t *n_out);
/* The state as l0_query returns it, with no fault rule applied and no rule's counter moved: for the
 * simulator's own machinery (the machine simulator keeps its hosts in step with the L0), so that a
 * fault rule fires on the product's calls only. */
int l0_sim_peek(l0_handle *h, l0_state *out);

/* Pure helpers, exported for tests of the sim and of the encoding. */
void l0_sha256(const void *data, size_t len, uint8_t out[32]);
int l0_sha256_files(const char *kernel, const char *initrd, uint8_t out[32]);

/* L0_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* HOSTREFRESH_L0_H */
