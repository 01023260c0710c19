"""The kopf operator: HostRefresh lifecycle and RefreshPlan fleet rollouts.

Decisions live in pure modules (``conditions``, ``lifecycle``, ``admission``, ``waves``, ``windows``,
``nodemarks``) that take snapshots and return decisions; ``kube`` does the I/O and ``handlers`` holds
the thin kopf handlers that glue the two.
"""
