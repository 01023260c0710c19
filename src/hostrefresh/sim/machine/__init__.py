"""The machine simulator: one node's machine with two real, isolated hosts, for tests and the demo.

The simulated L0 (the C library's ``sim`` backend) stands in for the L0 hypervisor; this package
stands in for what the L0 does to whole hosts: when the L0 boots an L1, a new host comes up (its own
PID, mount and UTS namespaces, its own init, its own agent process, its own sysfs view); when the L0
retires or stops an L1, every process of that host dies at once. Nothing here ships to a real node.
"""
