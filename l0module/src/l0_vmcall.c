/*
 * l0_vmcall.c - the real backend: hypercalls into the L0 with VMCALL (Intel)
 * or VMMCALL (AMD).
 *
 * Executing either instruction without a hypervisor that handles it raises
 * #UD (SIGILL) or lands in some other hypervisor, so the L0 is detected
 * first: CPUID.1:ECX[31] (hypervisor present) and then the hypervisor leaves
 * 0x40000000..0x40000F00 (step 0x100, as hypervisors stack their leaves) are
 * scanned for the signature "HOSTREFRESH0" in EBX:ECX:EDX.  Only a handle
 * that found it ever executes the instruction; everything else gets
 * L0_E_NO_L0.  Off x86-64 the backend reports L0_E_UNAVAILABLE.
 *
 * Register ABI (docs/hypercalls.rst): RAX = call number, arguments in RBX,
 * RCX, RDX, RSI; on return RAX = status, RBX = first result, RCX = second.
 * Buffers are passed by address in the caller's address space with their
 * size; the L0 translates them through the caller's page tables.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "l0_internal.h"

#define L0_SIGNATURE "HOSTREFRESH0"

struct vm {
    int amd;
    int probed;
    uint32_t leaf;
    uint32_t abi_version;
    uint32_t features;
    char seen[13];
    char why[L0_DETAIL_MAX]; /* why detection failed, repeated on every call */
};

#if defined(__x86_64__)

static void cpuid(uint32_t leaf, uint32_t r[4])
{
    __asm__ volatile("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(0));
}

struct hc {
    uint64_t rax, rbx, rcx, rdx, rsi;
};

static void hypercall(const struct vm *v, struct hc *r)
{
    if (v->amd)
        __asm__ volatile("vmmcall"
                         : "+a"(r->rax), "+b"(r->rbx), "+c"(r->rcx), "+d"(r->rdx), "+S"(r->rsi)
                         :
                         : "memory");
    else
        __asm__ volatile("vmcall"
                         : "+a"(r->rax), "+b"(r->rbx), "+c"(r->rcx), "+d"(r->rdx), "+S"(r->rsi)
                         :
                         : "memory");
}

/* Look for the L0 signature; fills v->leaf on success. */
static int detect(struct vm *v, char *detail)
{
    uint32_t r[4];
    cpuid(0, r);
    char vendor[13];
    memcpy(vendor, &r[1], 4);
    memcpy(vendor + 4, &r[3], 4);
    memcpy(vendor + 8, &r[2], 4);
    vendor[12] = '\0';
    v->amd = strcmp(vendor, "AuthenticAMD") == 0 || strcmp(vendor, "HygonGenuine") == 0;
    cpuid(1, r);
    if (!(r[2] & (1u << 31))) {
        l0_fmt(detail, "no L0 present: CPUID reports no hypervisor (bare metal, %s)", vendor);
        return L0_E_NO_L0;
    }
    for (uint32_t leaf = L0_CPUID_LEAF_FIRST; leaf <= L0_CPUID_LEAF_LAST; leaf += L0_CPUID_LEAF_STEP) {
        cpuid(leaf, r);
        char sig[13];
        memcpy(sig, &r[1], 4);
        memcpy(sig + 4, &r[2], 4);
        memcpy(sig + 8, &r[3], 4);
        sig[12] = '\0';
        if (leaf == L0_CPUID_LEAF_FIRST)
            memcpy(v->seen, sig, sizeof sig);
        if (memcmp(sig, L0_SIGNATURE, 12) == 0 && r[0] >= leaf) {
            v->leaf = leaf;
            return L0_OK;
        }
    }
    for (int i = 0; i < 12; i++)
        if (v->seen[i] && (v->seen[i] < 0x20 || v->seen[i] > 0x7e))
            v->seen[i] = '?';
    l0_fmt(detail,
           "no L0 present: no %s signature in CPUID leaves 0x%x..0x%x (hypervisor says \"%s\")",
           L0_SIGNATURE, (unsigned)L0_CPUID_LEAF_FIRST, (unsigned)L0_CPUID_LEAF_LAST, v->seen);
    return L0_E_NO_L0;
}

/* Detect once, then handshake with L0_CALL_PROBE once. */
static int ensure(l0_handle *h, struct vm *v)
{
    if (v->probed) {
        if (v->leaf)
            return L0_OK;
        l0_set_detail(h, "%s", v->why);
        return L0_E_NO_L0;
    }
    int rc = detect(v, v->why);
    if (rc == L0_OK) {
        struct hc r = {.rax = L0_CALL_PROBE};
        hypercall(v, &r);
        if (r.rax != L0_OK) {
            l0_fmt(v->why, "L0 refused the probe: %s", l0_status_name((int)r.rax));
            v->leaf = 0;
            rc = (int)r.rax;
        } else {
            v->abi_version = (uint32_t)r.rbx;
            v->features = (uint32_t)r.rcx;
        }
    }
    v->probed = 1;
    if (rc != L0_OK)
        l0_set_detail(h, "%s", v->why);
    return rc;
}

static int vm_call(l0_handle *h, struct l0_args *a)
{
    struct vm *v = h->priv;
    int rc = ensure(h, v);
    if (a->call == L0_CALL_PROBE) {
        l0_probe_info *out = a->out_probe;
        memset(out, 0, sizeof *out);
        out->backend = L0_BACKEND_VMCALL;
        if (rc == L0_OK) {
            out->l0_present = 1;
            out->abi_version = v->abi_version;
            out->features = v->features;
            memcpy(out->signature, L0_SIGNATURE, 12);
        }
        return rc == L0_E_NO_L0 ? L0_OK : rc;
    }
    if (rc != L0_OK)
        return rc;
    rc = l0_check_handshake(v->abi_version, v->features, a->call, h->detail);
    if (rc != L0_OK)
        return rc;
    struct hc r = {.rax = a->call};
    switch (a->call) {
    case L0_CALL_QUERY:
        r.rbx = (uint64_t)(uintptr_t)a->out_state;
        r.rcx = sizeof *a->out_state;
        break;
    case L0_CALL_PARTITION_CREATE:
        r.rbx = (uint64_t)(uintptr_t)a->spec;
        r.rcx = sizeof *a->spec;
        break;
    case L0_CALL_PARTITION_DESTROY:
        r.rbx = a->partition;
        break;
    case L0_CALL_L1_BOOT:
        r.rbx = a->partition;
        r.rcx = (uint64_t)(uintptr_t)a->image;
        r.rdx = sizeof *a->image;
        break;
    case L0_CALL_MEM_GRANT:
        r.rbx = a->source_l1;
        r.rcx = a->target_l1;
        r.rdx = (uint64_t)(uintptr_t)a->ranges;
        r.rsi = a->n_ranges;
        break;
    case L0_CALL_L1_RETIRE:
        r.rbx = a->source_l1;
        r.rcx = a->target_l1;
        break;
    case L0_CALL_L1_STOP:
        r.rbx = a->l1;
        break;
    default:
        break;
    }
    hypercall(v, &r);
    if (r.rax == L0_OK && a->out_id)
        *a->out_id = (uint32_t)r.rbx;
    if (r.rax > L0_STATUS_LAST) {
        l0_set_detail(h, "L0 returned unknown status %llu", (unsigned long long)r.rax);
        return L0_E_HW;
    }
    return (int)r.rax;
}

static void vm_close(l0_handle *h)
{
    free(h->priv);
    h->priv = NULL;
}

static const struct l0_backend_ops vm_ops = {"vmcall", vm_call, vm_close};

int l0_vmcall_backend_open(l0_handle *h)
{
    struct vm *v = calloc(1, sizeof *v);
    if (!v)
        return L0_E_IO;
    h->ops = &vm_ops;
    h->priv = v;
    return L0_OK;
}

#else /* not x86-64 */

int l0_vmcall_backend_open(l0_handle *h)
{
    l0_set_detail(h, "the vmcall backend exists only on x86-64");
    return L0_E_UNAVAILABLE;
}

#endif
