"""Kubernetes I/O shared by the operator, the agent and the CLI: clients, resources, leases.

Only I/O lives here; decisions stay in the components' pure modules.
"""
