/*
 * l0_internal.h - private to libl0: the backend table, the argument bundle
 * every call is dispatched with, and the pure state machine of the L0 (shared
 * by the simulated L0 and the C unit tests).  Not part of the ABI.
 */
#ifndef HOSTREFRESH_L0_INTERNAL_H
#define HOSTREFRESH_L0_INTERNAL_H

#include "l0.h"

/* Everything any call takes or returns; unused fields stay zero. */
struct l0_args {
    uint32_t call;
    uint32_t partition;
    uint32_t source_l1;
    uint32_t target_l1;
    uint32_t l1;
    uint32_t n_ranges;
    const l0_partition_spec *spec;
    const l0_image *image;
    const l0_range *ranges;
    uint32_t *out_id;
    l0_state *out_state;
    l0_probe_info *out_probe;
    /* L1_BOOT: checks the image against its checksum (NULL: trust it). */
    int (*verify_image)(const l0_image *image, char *detail);
};

struct l0_backend_ops {
    const char *name;
    int (*call)(l0_handle *h, struct l0_args *a);
    void (*close)(l0_handle *h);
};

struct l0_handle {
    uint32_t backend;
    const struct l0_backend_ops *ops;
    void *priv;
    char detail[L0_DETAIL_MAX];
};

/* Backends.  Each returns L0_OK and fills h->ops/h->priv, or a status. */
int l0_sim_backend_open(l0_handle *h, const char *path);
int l0_vmcall_backend_open(l0_handle *h);

/* Common helpers. */
void l0_set_detail(l0_handle *h, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void l0_fmt(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int l0_check_handshake(uint32_t abi_version, uint32_t features, uint32_t call, char *detail);
uint32_t l0_call_feature(uint32_t call);
int l0_call_changes_state(uint32_t call);

/* Ranges and CPU sets. */
int l0_range_valid(const l0_range *r);
int l0_ranges_overlap(const l0_range *a, const l0_range *b);
int l0_ranges_normalize(l0_range *r, uint32_t *n);
int l0_ranges_contain(const l0_range *list, uint32_t n, const l0_range *r);
int l0_ranges_subtract(l0_range *list, uint32_t *n, const l0_range *r);
int l0_ranges_add(l0_range *list, uint32_t *n, const l0_range *r);
int l0_cpuset_test(const l0_cpuset *s, uint32_t cpu);
void l0_cpuset_set(l0_cpuset *s, uint32_t cpu);
uint32_t l0_cpuset_count(const l0_cpuset *s);

/* The L0 state machine (pure; no I/O). */
void l0m_init(l0_state *st, const l0_sim_machine *m);
int l0m_apply(l0_state *st, const struct l0_args *a, char *detail);

#endif
