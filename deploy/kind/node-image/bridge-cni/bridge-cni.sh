#!/bin/bash
# The pod network of a hostrefresh kind node (what kindnetd does in kind's own node images): writes
# this node's CNI configuration, a Linux bridge with host-local addresses from the node's podCIDR,
# and keeps a route to every other node's podCIDR through that node's address. Runs in the host
# network namespace of each node (DaemonSet in /kind/manifests/default-cni.yaml) and talks to the
# API server at $CONTROL_PLANE_ENDPOINT, since service addresses need a working node network first.
set -euo pipefail
: "${NODE_NAME:?set NODE_NAME (downward API spec.nodeName)}"
: "${CONTROL_PLANE_ENDPOINT:?set CONTROL_PLANE_ENDPOINT (host:port of the API server)}"
CNI_CONF=${CNI_CONF:-/etc/cni/net.d/10-bridge.conflist}
SA=/var/run/secrets/kubernetes.io/serviceaccount

nodes() {
  kubectl --server="https://$CONTROL_PLANE_ENDPOINT" --certificate-authority=$SA/ca.crt \
    --token="$(cat $SA/token)" get nodes -o json
}

write_conf() {
  local subnet=$1 tmp
  tmp=$(mktemp "$CNI_CONF.XXXX")
  jq -n --arg subnet "$subnet" '{
    cniVersion: "0.4.0", name: "bridge-cni",
    plugins: [
      {type: "bridge", bridge: "cni0", isGateway: true, ipMasq: true, hairpinMode: true,
       ipam: {type: "host-local", ranges: [[{subnet: $subnet}]], routes: [{dst: "0.0.0.0/0"}]}},
      {type: "portmap", capabilities: {portMappings: true}}
    ]}' > "$tmp"
  if cmp -s "$tmp" "$CNI_CONF"; then rm -f "$tmp"; else mv "$tmp" "$CNI_CONF"; echo "wrote $CNI_CONF for $subnet"; fi
}

while true; do
  if json=$(nodes); then
    own=$(jq -r --arg n "$NODE_NAME" '.items[] | select(.metadata.name == $n) | .spec.podCIDR // empty' <<<"$json")
    [ -n "$own" ] && write_conf "$own"
    jq -r --arg n "$NODE_NAME" '.items[] | select(.metadata.name != $n and .spec.podCIDR != null)
      | "\(.spec.podCIDR) \(.status.addresses[] | select(.type == "InternalIP") | .address)"' <<<"$json" |
      while read -r cidr via; do
        case "$via" in *:*) continue ;; esac  # IPv4 only
        ip route replace "$cidr" via "$via" || echo "route $cidr via $via failed" >&2
      done
  fi
  sleep 10
done
