/*
 * hostrefresh test guest: writes a verifiable pattern into every page of its RAM, forever.
 *
 * Why: the handover tests must prove that no guest memory is lost or corrupted and that the guest keeps
 * running after any number of live migrations. A host-side verifier (hostrefresh.sim.guest)
 * reads the control block and the pages over QMP and checks them against the same formulas.
 *
 * Pattern: pages are numbered in region order (RAM from the multiboot memory map, from COVER_START up).
 * The single counter `progress` says how many page writes are done: generation G = progress / N + 1,
 * the first progress % N pages carry G, the rest G - 1 (0 = never written). One store per page keeps
 * the control block consistent whenever the vCPU is paused.
 * Page words: [0] PAGE_MAGIC, [1] physical address, [2] generation, [3] mix(addr, gen), [511] ~mix.
 *
 * Kernel command line (-append): pace=N (pause loops after each page once RAM was dirtied fully, to
 * limit the dirty rate), cover_mb=N (cover at most N MiB, 0 = all), seed=N.
 */
typedef unsigned long u64;
typedef unsigned int u32;
typedef unsigned char u8;

#define CTL_MAGIC 0x31304c5443524855UL /* "HURCTL01" */
#define PAGE_MAGIC 0x3130454741505248UL /* "HRPAGE01" */
#define COVER_START 0x400000UL
#define MAX_REGIONS 32
#define PAGE 4096UL
#define MB_BOOT_MAGIC 0x2BADB002U

struct region {
	u64 start;
	u64 end;
};

/* Layout shared with hostrefresh/sim/guest/pattern.py; keep in sync. */
struct control {
	u64 magic;
	u64 version;
	u64 state; /* 1 booting, 2 running, 3 no memory map */
	u64 progress; /* total page writes */
	u64 page_count; /* N */
	u64 passes_completed;
	u64 pace;
	u64 seed;
	u64 region_count;
	u64 reserved[7];
	struct region regions[MAX_REGIONS];
};

__attribute__((section(".control"), used)) volatile struct control ctl;

struct mb_info {
	u32 flags, mem_lower, mem_upper, boot_device, cmdline, mods_count, mods_addr;
	u32 syms[4];
	u32 mmap_length, mmap_addr;
};

struct mb_mmap {
	u32 size;
	u64 addr;
	u64 len;
	u32 type;
} __attribute__((packed));

static u64 mix(u64 addr, u64 gen, u64 seed)
{
	u64 m = (addr ^ seed) * 0x9E3779B97F4A7C15UL;
	m ^= gen * 0xC2B2AE3D27D4EB4FUL;
	m ^= m >> 29;
	return m;
}

static void outb(unsigned short port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static void say(const char *s)
{
	while (*s)
		outb(0x3f8, (u8)*s++);
}

static u64 parse_opt(const char *cmdline, const char *key, u64 dflt)
{
	const char *p = cmdline;
	while (p && *p) {
		const char *k = key;
		const char *q = p;
		while (*k && *q == *k) {
			k++;
			q++;
		}
		if (!*k && *q == '=' && (p == cmdline || p[-1] == ' ')) {
			u64 v = 0;
			for (q++; *q >= '0' && *q <= '9'; q++)
				v = v * 10 + (u64)(*q - '0');
			return v;
		}
		p++;
	}
	return dflt;
}

static void add_region(u64 start, u64 end, u64 *budget)
{
	if (start < COVER_START)
		start = COVER_START;
	start = (start + PAGE - 1) & ~(PAGE - 1);
	end &= ~(PAGE - 1);
	if (end <= start || ctl.region_count >= MAX_REGIONS || *budget == 0)
		return;
	if (end - start > *budget)
		end = start + *budget;
	*budget -= end - start;
	ctl.regions[ctl.region_count].start = start;
	ctl.regions[ctl.region_count].end = end;
	ctl.region_count++;
	ctl.page_count += (end - start) / PAGE;
}

static void write_page(u64 addr, u64 gen, u64 seed)
{
	volatile u64 *w = (volatile u64 *)addr;
	u64 m = mix(addr, gen, seed);
	w[0] = PAGE_MAGIC;
	w[1] = addr;
	w[2] = gen;
	w[3] = m;
	w[511] = ~m;
}

void guest_main(u32 magic, u32 info_addr)
{
	const struct mb_info *info = (const struct mb_info *)(u64)info_addr;
	const char *cmdline = "";
	u64 budget, seed, pace;

	ctl.state = 1;
	ctl.version = 1;
	ctl.magic = CTL_MAGIC;
	if (magic != MB_BOOT_MAGIC) {
		say("hrguest: not booted by multiboot\n");
		ctl.state = 3;
		return;
	}
	if (info->flags & (1U << 2))
		cmdline = (const char *)(u64)info->cmdline;
	budget = parse_opt(cmdline, "cover_mb", 0) << 20;
	if (budget == 0)
		budget = ~0UL;
	seed = parse_opt(cmdline, "seed", 0);
	pace = parse_opt(cmdline, "pace", 0);
	ctl.seed = seed;
	ctl.pace = pace;

	if (info->flags & (1U << 6)) {
		u64 p = info->mmap_addr;
		u64 end = p + info->mmap_length;
		while (p < end) {
			const struct mb_mmap *e = (const struct mb_mmap *)p;
			if (e->type == 1)
				add_region(e->addr, e->addr + e->len, &budget);
			p += e->size + 4;
		}
	} else if (info->flags & 1U) {
		add_region(0x100000UL, 0x100000UL + ((u64)info->mem_upper << 10), &budget);
	}
	if (ctl.page_count == 0) {
		say("hrguest: no memory map\n");
		ctl.state = 3;
		return;
	}
	ctl.state = 2;
	say("hrguest: running\n");

	for (u64 gen = 1;; gen++) {
		for (u64 r = 0; r < ctl.region_count; r++) {
			u64 start = ctl.regions[r].start, stop = ctl.regions[r].end;
			for (u64 a = start; a < stop; a += PAGE) {
				write_page(a, gen, seed);
				ctl.progress = ctl.progress + 1;
				if (gen > 1)
					for (u64 i = 0; i < pace; i++)
						__asm__ volatile("pause");
			}
		}
		ctl.passes_completed = gen;
	}
}
