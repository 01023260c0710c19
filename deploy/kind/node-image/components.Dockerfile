# The images a kind node image preloads, made from binaries built here (deploy/kind/build-node-image.sh
# passes them in bin/): kubeadm's control-plane components under the names kubeadm expects, the pause
# image, CoreDNS, and the bridge CNI that stands in for kind's default network. One target per image.
ARG BASE=debian:bookworm-slim

# kube-apiserver, kube-controller-manager, kube-scheduler, etcd: one static binary on PATH (kubeadm's
# static pod manifests call them by name).
FROM ${BASE} AS component
ARG BINARY
COPY bin/${BINARY} /usr/local/bin/${BINARY}

# kube-proxy programs iptables (Debian's, nf_tables backend, like the node's own).
FROM ${BASE} AS kube-proxy
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iptables conntrack ipset kmod \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY bin/kube-proxy /usr/local/bin/kube-proxy

# The cluster DNS kubeadm deploys (its Deployment runs the image's entrypoint with -conf).
FROM ${BASE} AS coredns
COPY bin/coredns /coredns
ENTRYPOINT ["/coredns"]

# The pod sandbox (pause.c, static).
FROM scratch AS pause
COPY bin/pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]

# The node network (bridge-cni/bridge-cni.sh): a bridge per node for its podCIDR, routes between nodes.
FROM ${BASE} AS bridge-cni
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 jq ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY bin/kubectl /usr/local/bin/kubectl
COPY bridge-cni/bridge-cni.sh /usr/local/bin/bridge-cni
ENTRYPOINT ["/usr/local/bin/bridge-cni"]
