"""Stand-ins for what a development machine lacks, for tests, benchmarks, the demo and kind.

Production code (the operator, the node agent, the L0 binding, the CLI ...) never imports this
package (an import-linter contract in pyproject.toml says so): what the agent needs from here it
takes through its constructor and flags, and ``python -m hostrefresh.sim.agent`` wires it in.

- ``node``: simulated nodes (a simulated L0 state file, a fake sysfs tree and simulated VMs).
- ``sysfs``: a fake sysfs tree that behaves like the kernel's CPU and memory hotplug files.
- ``migrator``: simulated VMs and their handover, so that fleets of hundreds of nodes fit in one process.
- ``agent``: the node agent with those parts wired in (many simulated nodes, or one fake sysfs).
- ``machine``: the machine simulator, two real isolated hosts per node following the simulated L0.
- ``guest``: the real QEMU test guest: build it, run it in a throwaway lab, verify its memory.

The simulated L0 itself is the C library's ``sim`` backend, reached through ``hostrefresh.l0``.
"""
