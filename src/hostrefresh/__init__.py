"""hostrefresh: refresh VM hosts in place through on-demand nested virtualization.

Subpackages mirror the components: ``api`` (custom resource types, the source of the CRDs),
``operator`` (kopf operator), ``nodeagent`` (node-side steps), ``l0`` (binding to the native L0
library in ``l0module/``), ``controlplane`` (the real local kube-apiserver + etcd used by tests and
the demo) and ``cli`` (the kubectl plugin). ``sim`` holds the stand-ins for tests, benches, the demo
and kind (simulated nodes, fake sysfs, simulated VMs, the machine simulator, the test guest's
tooling); production code never imports it.
"""

__version__ = "0.1.0"
