"""Pinned versions of the control-plane tools. Change them here; the cache key follows."""

KUBERNETES = "v1.34.4"
#: The etcd that controller-runtime's envtest pairs with Kubernetes 1.34.
ETCD = "v3.6.4"
HELM = "v3.19.0"
#: kind (its Go module), the version whose default node image is Kubernetes 1.34.
KIND = "v0.30.0"
#: crictl, which `kind load` calls on the nodes.
CRICTL = "v1.34.0"
#: CoreDNS, the version kubeadm 1.34 deploys as the cluster DNS.
COREDNS = "v1.12.1"
#: krew, the kubectl plugin manager: the plugin's test installs `make plugin`'s archive with it. The newest
#: version the Go module proxy serves (later tags are not published as module versions there).
KREW = "v0.4.3"
