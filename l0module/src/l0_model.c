/*
 * l0_model.c - the L0 state machine, pure and I/O free.  The simulated L0
 * runs it on the state it loads from its file; the C unit tests run it
 * directly.  The rules here are the contract a real L0 must keep too, so they
 * are spelled out in docs/hypercalls.rst call by call.
 *
 * Model: the machine's CPUs and memory are split into disjoint partitions;
 * each partition records the partition it was carved from (parent, 0 for
 * the root) and the L1 booted in it (owner_l1, 0 for none).  Partition 1 and
 * L1 1 are the host as it booted.  Ids only grow, so they are never reused.
 */
#include <string.h>

#include "l0_internal.h"

static l0_partition *find_partition(l0_state *st, uint32_t id)
{
    for (uint32_t i = 0; i < st->n_partitions; i++)
        if (st->partitions[i].id == id)
            return &st->partitions[i];
    return NULL;
}

static l0_l1 *find_l1(l0_state *st, uint32_t id)
{
    for (uint32_t i = 0; i < st->n_l1s; i++)
        if (st->l1s[i].id == id)
            return &st->l1s[i];
    return NULL;
}

static uint32_t running_l1s(const l0_state *st)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < st->n_l1s; i++)
        n += st->l1s[i].state == L0_L1_RUNNING;
    return n;
}

static int partition_has_running_l1(l0_state *st, const l0_partition *p)
{
    l0_l1 *l1 = p->owner_l1 ? find_l1(st, p->owner_l1) : NULL;
    return l1 && l1->state == L0_L1_RUNNING;
}

static const char *l1_state_name(uint32_t s)
{
    switch (s) {
    case L0_L1_RUNNING:
        return "running";
    case L0_L1_RETIRED:
        return "retired";
    case L0_L1_STOPPED:
        return "stopped";
    default:
        return "unknown";
    }
}

static void remove_partition(l0_state *st, l0_partition *p)
{
    size_t i = (size_t)(p - st->partitions);
    memmove(p, p + 1, (st->n_partitions - i - 1) * sizeof *p);
    st->n_partitions--;
    memset(&st->partitions[st->n_partitions], 0, sizeof *p);
}

/* Drop every grant that names this L1 as source or target. */
static void drop_grants_of(l0_state *st, uint32_t l1)
{
    uint32_t out = 0;
    for (uint32_t i = 0; i < st->n_grants; i++)
        if (st->grants[i].source_l1 != l1 && st->grants[i].target_l1 != l1)
            st->grants[out++] = st->grants[i];
    for (uint32_t i = out; i < st->n_grants; i++)
        memset(&st->grants[i], 0, sizeof st->grants[i]);
    st->n_grants = out;
}

/* Merge from's CPUs and memory into to (on a copy, so LIMIT leaves no trace). */
static int merge_into(l0_partition *to, const l0_partition *from)
{
    l0_partition tmp = *to;
    for (uint32_t i = 0; i < from->n_ranges; i++) {
        int rc = l0_ranges_add(tmp.ranges, &tmp.n_ranges, &from->ranges[i]);
        if (rc != L0_OK)
            return rc;
    }
    for (int w = 0; w < L0_CPUSET_WORDS; w++)
        tmp.cpus.bits[w] |= from->cpus.bits[w];
    *to = tmp;
    return L0_OK;
}

static void reparent(l0_state *st, uint32_t from, uint32_t to)
{
    for (uint32_t i = 0; i < st->n_partitions; i++)
        if (st->partitions[i].parent == from)
            st->partitions[i].parent = to;
}

void l0m_init(l0_state *st, const l0_sim_machine *m)
{
    memset(st, 0, sizeof *st);
    st->abi_version = m->abi_version ? m->abi_version : L0_ABI_VERSION;
    st->features = m->features ? m->features : (L0_FEAT_ALL_CALLS | L0_FEAT_SIMULATED);
    st->n_cpus = m->n_cpus;
    st->mem_bytes = m->mem_bytes;
    st->n_partitions = 1;
    st->n_l1s = 1;
    l0_partition *p = &st->partitions[0];
    p->id = 1;
    p->owner_l1 = 1;
    for (uint32_t c = 0; c < m->n_cpus; c++)
        l0_cpuset_set(&p->cpus, c);
    p->n_ranges = 1;
    p->ranges[0].base = 0;
    p->ranges[0].size = m->mem_bytes;
    st->l1s[0].id = 1;
    st->l1s[0].state = L0_L1_RUNNING;
    st->l1s[0].partition = 1;
    st->next_partition_id = 2;
    st->next_l1_id = 2;
}

static int m_partition_create(l0_state *st, const struct l0_args *a, char *detail)
{
    const l0_partition_spec *s = a->spec;
    if (st->n_partitions >= L0_MAX_PARTITIONS) {
        l0_fmt(detail, "all %d partitions are in use", L0_MAX_PARTITIONS);
        return L0_E_LIMIT;
    }
    l0_partition *donor = NULL;
    for (uint32_t c = 0; c < L0_MAX_CPUS; c++) {
        if (!l0_cpuset_test(&s->cpus, c))
            continue;
        if (c >= st->n_cpus) {
            l0_fmt(detail, "CPU %u does not exist (machine has %u CPUs)", c, st->n_cpus);
            return L0_E_INVALID;
        }
        l0_partition *owner = NULL;
        for (uint32_t i = 0; i < st->n_partitions; i++)
            if (l0_cpuset_test(&st->partitions[i].cpus, c))
                owner = &st->partitions[i];
        if (!donor)
            donor = owner;
        if (!owner || owner != donor) {
            l0_fmt(detail, "CPU %u belongs to partition %u, not to donor partition %u", c,
                   owner ? owner->id : 0, donor ? donor->id : 0);
            return L0_E_RESOURCE;
        }
    }
    if (!donor || !partition_has_running_l1(st, donor)) {
        l0_fmt(detail, "donor partition %u has no running L1 to take resources from",
               donor ? donor->id : 0);
        return L0_E_RESOURCE;
    }
    l0_partition carved = *donor;
    for (uint32_t i = 0; i < s->n_ranges; i++) {
        const l0_range *r = &s->ranges[i];
        if (!l0_ranges_contain(donor->ranges, donor->n_ranges, r)) {
            l0_fmt(detail, "memory [0x%llx +0x%llx] is not inside donor partition %u",
                   (unsigned long long)r->base, (unsigned long long)r->size, donor->id);
            return L0_E_RESOURCE;
        }
        for (uint32_t g = 0; g < st->n_grants; g++)
            if (st->grants[g].range.size && l0_ranges_overlap(r, &st->grants[g].range)) {
                l0_fmt(detail, "memory [0x%llx +0x%llx] is granted from L1 %u to L1 %u",
                       (unsigned long long)r->base, (unsigned long long)r->size,
                       st->grants[g].source_l1, st->grants[g].target_l1);
                return L0_E_RESOURCE;
            }
        int rc = l0_ranges_subtract(carved.ranges, &carved.n_ranges, r);
        if (rc != L0_OK) {
            l0_fmt(detail, "donor partition %u would exceed %d memory ranges", donor->id,
                   L0_MAX_RANGES);
            return rc;
        }
    }
    for (int w = 0; w < L0_CPUSET_WORDS; w++)
        carved.cpus.bits[w] &= ~s->cpus.bits[w];
    if (l0_cpuset_count(&carved.cpus) == 0 || carved.n_ranges == 0) {
        l0_fmt(detail, "donor partition %u would be left without %s", donor->id,
               carved.n_ranges ? "CPUs" : "memory");
        return L0_E_RESOURCE;
    }
    *donor = carved;
    l0_partition *p = &st->partitions[st->n_partitions++];
    memset(p, 0, sizeof *p);
    p->id = st->next_partition_id++;
    p->parent = donor->id;
    p->cpus = s->cpus;
    memcpy(p->ranges, s->ranges, s->n_ranges * sizeof *s->ranges);
    p->n_ranges = s->n_ranges;
    l0_ranges_normalize(p->ranges, &p->n_ranges);
    *a->out_id = p->id;
    return L0_OK;
}

static int m_partition_destroy(l0_state *st, const struct l0_args *a, char *detail)
{
    l0_partition *p = find_partition(st, a->partition);
    if (!p) {
        l0_fmt(detail, "no partition %u", a->partition);
        return L0_E_NOT_FOUND;
    }
    if (partition_has_running_l1(st, p)) {
        l0_fmt(detail, "partition %u still runs L1 %u; stop or retire it first", p->id, p->owner_l1);
        return L0_E_BUSY;
    }
    l0_partition *parent = p->parent ? find_partition(st, p->parent) : NULL;
    if (!parent) {
        l0_fmt(detail, "partition %u is the root partition; nothing to return it to", p->id);
        return L0_E_WRONG_STATE;
    }
    int rc = merge_into(parent, p);
    if (rc != L0_OK) {
        l0_fmt(detail, "parent partition %u would exceed %d memory ranges", parent->id,
               L0_MAX_RANGES);
        return rc;
    }
    uint32_t id = p->id, parent_id = parent->id;
    remove_partition(st, p);
    reparent(st, id, parent_id);
    return L0_OK;
}

static int m_nested_enable(l0_state *st, char *detail)
{
    if (st->nested) {
        l0_fmt(detail, "nested virtualization is already enabled");
        return L0_E_ALREADY;
    }
    st->nested = 1;
    return L0_OK;
}

static int m_nested_disable(l0_state *st, char *detail)
{
    if (!st->nested) {
        l0_fmt(detail, "nested virtualization is already disabled");
        return L0_E_ALREADY;
    }
    uint32_t running = running_l1s(st);
    if (running > 1 || st->n_partitions > 1) {
        l0_fmt(detail, "%u L1s running and %u partitions; need exactly one of each", running,
               st->n_partitions);
        return L0_E_BUSY;
    }
    st->nested = 0;
    return L0_OK;
}

static int m_l1_boot(l0_state *st, const struct l0_args *a, char *detail)
{
    if (!st->nested) {
        l0_fmt(detail, "nested virtualization is disabled; enable it before booting a second L1");
        return L0_E_WRONG_STATE;
    }
    l0_partition *p = find_partition(st, a->partition);
    if (!p) {
        l0_fmt(detail, "no partition %u", a->partition);
        return L0_E_NOT_FOUND;
    }
    if (partition_has_running_l1(st, p)) {
        l0_fmt(detail, "partition %u already runs L1 %u", p->id, p->owner_l1);
        return L0_E_BUSY;
    }
    uint32_t evict = st->n_l1s; /* index of the oldest non-running L1, if the table is full */
    if (st->n_l1s >= L0_MAX_L1S) {
        for (evict = 0; evict < st->n_l1s && st->l1s[evict].state == L0_L1_RUNNING; evict++)
            ;
        if (evict == st->n_l1s) {
            l0_fmt(detail, "all %d L1 slots hold running L1s", L0_MAX_L1S);
            return L0_E_LIMIT;
        }
    }
    if (a->verify_image) {
        int rc = a->verify_image(a->image, detail);
        if (rc != L0_OK)
            return rc;
    }
    uint32_t slot = st->n_l1s;
    if (evict < st->n_l1s) {
        memmove(&st->l1s[evict], &st->l1s[evict + 1], (st->n_l1s - evict - 1) * sizeof st->l1s[0]);
        slot = st->n_l1s - 1;
    }
    l0_l1 *l1 = &st->l1s[slot];
    memset(l1, 0, sizeof *l1);
    l1->id = st->next_l1_id++;
    l1->state = L0_L1_RUNNING;
    l1->partition = p->id;
    memcpy(l1->image_sha256, a->image->sha256, L0_SHA256_LEN);
    st->n_l1s = slot + 1;
    p->owner_l1 = l1->id;
    *a->out_id = l1->id;
    return L0_OK;
}

static int need_running(l0_state *st, uint32_t id, const char *role, l0_l1 **out, char *detail)
{
    l0_l1 *l1 = find_l1(st, id);
    if (!l1) {
        l0_fmt(detail, "no %s L1 %u", role, id);
        return L0_E_NOT_FOUND;
    }
    if (l1->state != L0_L1_RUNNING) {
        l0_fmt(detail, "%s L1 %u is %s, not running", role, id, l1_state_name(l1->state));
        return L0_E_WRONG_STATE;
    }
    *out = l1;
    return L0_OK;
}

/* Source and target L1 both running, nested on: what grant and retire both require. */
static int need_pair_nested(l0_state *st, const struct l0_args *a, l0_l1 **src, l0_l1 **dst, char *detail)
{
    int rc = need_running(st, a->source_l1, "source", src, detail);
    if (rc == L0_OK)
        rc = need_running(st, a->target_l1, "target", dst, detail);
    if (rc != L0_OK)
        return rc;
    if (!st->nested) {
        l0_fmt(detail, "nested virtualization is disabled");
        return L0_E_WRONG_STATE;
    }
    return L0_OK;
}

static int m_mem_grant(l0_state *st, const struct l0_args *a, char *detail)
{
    l0_l1 *src, *dst;
    int rc = need_pair_nested(st, a, &src, &dst, detail);
    if (rc != L0_OK)
        return rc;
    l0_partition *sp = find_partition(st, src->partition);
    l0_grant add[L0_MAX_GRANT_RANGES + 1];
    uint32_t n_add = 0;
    l0_range marker = {0, 0};
    uint32_t n = a->n_ranges ? a->n_ranges : 1;
    for (uint32_t i = 0; i < n; i++) {
        const l0_range *r = a->n_ranges ? &a->ranges[i] : &marker;
        if (r->size && !(sp && l0_ranges_contain(sp->ranges, sp->n_ranges, r))) {
            l0_fmt(detail, "memory [0x%llx +0x%llx] is not owned by source L1 %u",
                   (unsigned long long)r->base, (unsigned long long)r->size, src->id);
            return L0_E_RESOURCE;
        }
        int dup = 0;
        for (uint32_t g = 0; g < st->n_grants; g++) {
            const l0_grant *e = &st->grants[g];
            if (e->source_l1 == src->id && e->target_l1 == dst->id && e->range.base == r->base &&
                e->range.size == r->size) {
                dup = 1;
                break;
            }
            if (r->size && e->range.size && l0_ranges_overlap(r, &e->range)) {
                l0_fmt(detail, "memory [0x%llx +0x%llx] overlaps a grant from L1 %u to L1 %u",
                       (unsigned long long)r->base, (unsigned long long)r->size, e->source_l1,
                       e->target_l1);
                return L0_E_RESOURCE;
            }
        }
        if (!dup) {
            add[n_add].source_l1 = src->id;
            add[n_add].target_l1 = dst->id;
            add[n_add].range = *r;
            n_add++;
        }
    }
    if (n_add == 0) {
        l0_fmt(detail, "L1 %u already granted these ranges to L1 %u", src->id, dst->id);
        return L0_E_ALREADY;
    }
    if (st->n_grants + n_add > L0_MAX_GRANTS) {
        l0_fmt(detail, "%u grants exist, %u more exceed %d", st->n_grants, n_add, L0_MAX_GRANTS);
        return L0_E_LIMIT;
    }
    memcpy(&st->grants[st->n_grants], add, n_add * sizeof *add);
    st->n_grants += n_add;
    return L0_OK;
}

static int m_l1_retire(l0_state *st, const struct l0_args *a, char *detail)
{
    l0_l1 *src, *dst;
    int rc = need_pair_nested(st, a, &src, &dst, detail);
    if (rc != L0_OK)
        return rc;
    int granted = 0;
    for (uint32_t g = 0; g < st->n_grants; g++)
        granted |= st->grants[g].source_l1 == src->id && st->grants[g].target_l1 == dst->id;
    if (!granted) {
        l0_fmt(detail, "L1 %u has not handed over to L1 %u (no grant)", src->id, dst->id);
        return L0_E_NO_GRANT;
    }
    l0_partition *sp = find_partition(st, src->partition);
    l0_partition *dp = find_partition(st, dst->partition);
    if (!sp || !dp || sp == dp) {
        l0_fmt(detail, "L1 %u and L1 %u do not sit in two partitions", src->id, dst->id);
        return L0_E_WRONG_STATE;
    }
    rc = merge_into(dp, sp);
    if (rc != L0_OK) {
        l0_fmt(detail, "target partition %u would exceed %d memory ranges", dp->id, L0_MAX_RANGES);
        return rc;
    }
    uint32_t sp_id = sp->id, dp_id = dp->id, sp_parent = sp->parent;
    if (dp->parent == sp_id)
        dp->parent = sp_parent;
    src->state = L0_L1_RETIRED;
    drop_grants_of(st, src->id);
    remove_partition(st, sp);
    reparent(st, sp_id, dp_id);
    return L0_OK;
}

static int m_l1_stop(l0_state *st, const struct l0_args *a, char *detail)
{
    l0_l1 *l1 = find_l1(st, a->l1);
    if (!l1) {
        l0_fmt(detail, "no L1 %u", a->l1);
        return L0_E_NOT_FOUND;
    }
    if (l1->state == L0_L1_STOPPED) {
        l0_fmt(detail, "L1 %u is already stopped", l1->id);
        return L0_E_ALREADY;
    }
    if (l1->state != L0_L1_RUNNING) {
        l0_fmt(detail, "L1 %u is %s", l1->id, l1_state_name(l1->state));
        return L0_E_WRONG_STATE;
    }
    if (running_l1s(st) == 1) {
        l0_fmt(detail, "L1 %u is the only running L1; the machine would have no host", l1->id);
        return L0_E_WRONG_STATE;
    }
    l1->state = L0_L1_STOPPED;
    drop_grants_of(st, l1->id);
    return L0_OK;
}

int l0m_apply(l0_state *st, const struct l0_args *a, char *detail)
{
    switch (a->call) {
    case L0_CALL_QUERY:
        *a->out_state = *st;
        return L0_OK;
    case L0_CALL_PARTITION_CREATE:
        return m_partition_create(st, a, detail);
    case L0_CALL_PARTITION_DESTROY:
        return m_partition_destroy(st, a, detail);
    case L0_CALL_NESTED_ENABLE:
        return m_nested_enable(st, detail);
    case L0_CALL_NESTED_DISABLE:
        return m_nested_disable(st, detail);
    case L0_CALL_L1_BOOT:
        return m_l1_boot(st, a, detail);
    case L0_CALL_MEM_GRANT:
        return m_mem_grant(st, a, detail);
    case L0_CALL_L1_RETIRE:
        return m_l1_retire(st, a, detail);
    case L0_CALL_L1_STOP:
        return m_l1_stop(st, a, detail);
    default:
        l0_fmt(detail, "call %u is not implemented", a->call);
        return L0_E_UNKNOWN_CALL;
    }
}
