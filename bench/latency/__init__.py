"""The operator-latency bench (``bench/operator_latency.py``), one concern per module.

Split so that each part can be read, and checked on a small input, alone: the measurements
(``latencies``, ``audit``, ``stats``) are pure functions of what a run recorded, apart from the
machinery that produces those records (``cluster``, ``processes``, ``fleet``, ``watch``, ``cpu``).

- ``cluster``: the control plane with the audit policy the request counts and latencies rely on;
- ``processes``: the agent and operator processes a scenario starts, and how to tell they are up;
- ``fleet``: simulated nodes, their L0 pace, and a scenario's stage (nodes + agent + operator);
- ``watch``: the bench's own watch, timestamping every HostRefresh event on receipt;
- ``latencies``: report -> status and slot free -> grant from the watch's timestamps;
- ``audit``: the API server's audit log: requests per refresh, the same latencies on its clock;
- ``cpu``: CPU used by each process during a scenario, and the machine's speed before it;
- ``stats``: percentiles and the summary every figure is reported as;
- ``scenarios``: the standalone (``hr``) and RefreshPlan (``plan``) scenarios, and one run of them;
- ``report``: the printed tables and the Markdown written beside the JSON;
- ``cli``: the command line (flags, runs, the JSON file).
"""
