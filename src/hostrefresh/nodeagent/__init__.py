"""Node agent: the node-local side of a refresh (partitioning, VM handover, L0 calls), resumable."""
