/*
 * Multiboot (v1) entry of the hostrefresh test guest.
 *
 * QEMU's multiboot loader refuses ELF64 images, so the header uses the "a.out kludge" (flag bit 16):
 * the image is a flat binary whose load addresses are in the header. The loader enters us in 32-bit
 * protected mode without paging; we switch to long mode with an identity map (2 MiB pages, up to
 * 64 GiB) so the pattern writer can reach guest RAM above 4 GiB as well.
 */
	.set MB_MAGIC, 0x1BADB002
	.set MB_FLAGS, (1 << 1) | (1 << 16)
	.set MAP_GIB, 64

	.section .multiboot, "a"
	.align 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	.long mb_header		/* header_addr */
	.long _load_start	/* load_addr */
	.long _load_end		/* load_end_addr */
	.long _bss_end		/* bss_end_addr */
	.long _start32		/* entry_addr */

	.section .text32, "ax"
	.code32
	.globl _start32
_start32:
	cli
	movl %eax, mb_magic
	movl %ebx, mb_info
	movl $stack_top, %esp

	/* PML4[0] -> PDPT */
	movl $pdpt, %eax
	orl $3, %eax
	movl %eax, pml4
	movl $0, pml4 + 4

	/* PDPT[i] -> PD i, one page directory per GiB */
	xorl %ecx, %ecx
1:	movl %ecx, %eax
	shll $12, %eax
	addl $pds, %eax
	orl $3, %eax
	movl %eax, pdpt(, %ecx, 8)
	movl $0, pdpt + 4(, %ecx, 8)
	incl %ecx
	cmpl $MAP_GIB, %ecx
	jb 1b

	/* PD entries: identity 2 MiB pages (present | writable | page size) */
	xorl %ecx, %ecx
2:	movl %ecx, %eax
	shll $21, %eax
	orl $0x83, %eax
	movl %eax, pds(, %ecx, 8)
	movl %ecx, %eax
	shrl $11, %eax
	movl %eax, pds + 4(, %ecx, 8)
	incl %ecx
	cmpl $(MAP_GIB * 512), %ecx
	jb 2b

	/* Caches on: firmware may leave CR0.CD/NW set and MTRRs disabled (all memory uncached), which
	 * made the pattern writer ~50x slower under nested KVM. */
	movl %cr0, %eax
	andl $~((1 << 30) | (1 << 29)), %eax
	movl %eax, %cr0
	movl $1, %eax
	cpuid
	testl $(1 << 12), %edx		/* MTRR supported? */
	jz 4f
	movl $0x2FF, %ecx		/* IA32_MTRR_DEF_TYPE: enabled, default write-back */
	movl $((1 << 11) | 6), %eax
	xorl %edx, %edx
	wrmsr
4:	movl %cr4, %eax
	orl $(1 << 5), %eax		/* PAE */
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $0xC0000080, %ecx		/* EFER */
	rdmsr
	orl $(1 << 8), %eax		/* LME */
	wrmsr
	movl %cr0, %eax
	orl $0x80000001, %eax		/* PG | PE */
	movl %eax, %cr0
	lgdt gdt_ptr
	ljmp $0x08, $start64

	.code64
start64:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movq $stack_top, %rsp
	movl mb_magic, %edi
	movl mb_info, %esi
	call guest_main
3:	hlt
	jmp 3b

	.section .rodata
	.align 16
gdt:
	.quad 0
	.quad 0x00AF9A000000FFFF	/* 0x08: 64-bit code */
	.quad 0x00CF92000000FFFF	/* 0x10: data */
gdt_ptr:
	.word gdt_ptr - gdt - 1
	.long gdt

	.section .data
	.align 4
mb_magic: .long 0
mb_info: .long 0

	.section .bss
	.align 4096
pml4: .skip 4096
pdpt: .skip 4096
pds: .skip 4096 * MAP_GIB
stack: .skip 16384
stack_top:
